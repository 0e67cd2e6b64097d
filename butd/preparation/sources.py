"""Where every official raw file of the VQA v2 data configs comes from, and how to fetch it.

`SOURCES` maps each file's path relative to `data.raw_dir` (the names `conf/data/vqa2.yaml`,
`vqa2_test.yaml` and `vqa2_adaptive.yaml` use) to the archive that holds it. The archives are
fetched by `scripts/download_vqa2.sh GROUP...`, whose table lists the same archives, members and
sizes (`tests/data/test_sources.py` keeps the two in step). `how_to_get` turns a missing file
into the command that fetches it; the cache's "raw files missing" errors use it.

Sizes are in decimal megabytes (1 MB = 10^6 bytes) and approximate: the feature archive sizes
are the ones their publisher lists, the unpacked feature sizes are worked out from the row
format (base64 float32 features), the others are rounded.

Mirrors move: each host's base URL can be replaced with an environment variable
(`BUTD_VQA_URL`, `BUTD_FEATURES_URL`, `BUTD_GLOVE_URL`, `BUTD_VG_URL`), read by this module and
the script alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: the download script, relative to the repository root
SCRIPT = "scripts/download_vqa2.sh"

#: host -> (environment variable that overrides its base URL, default base URL)
HOSTS: dict[str, tuple[str, str]] = {
    # the VQA site's S3 bucket (questions and annotations)
    "vqa": ("BUTD_VQA_URL", "https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa"),
    # the bottom-up-attention project's published blob storage (Faster R-CNN features)
    "features": ("BUTD_FEATURES_URL", "https://imagecaption.blob.core.windows.net/imagecaption"),
    # Stanford NLP (GloVe)
    "glove": ("BUTD_GLOVE_URL", "http://nlp.stanford.edu/data"),
    # the VQA-CP authors' page (VQA-CP v2's JSON files)
    "vqacp": ("BUTD_VQACP_URL", "https://computing.ece.vt.edu/~aish/vqacp"),
    # the Visual Genome site (v1.2 question-answer pairs and image metadata)
    "vg": ("BUTD_VG_URL", "https://visualgenome.org/static/data/dataset"),
}

#: download group -> what it holds; the script takes these names (and `all`)
GROUPS: dict[str, str] = {
    "questions": "VQA v2 questions: train2014, val2014, test2015, test-dev2015",
    "annotations": "VQA v2 annotations (10 answers per question): train2014, val2014",
    "features36": "bottom-up features, 36 boxes per image: train2014 + val2014 images",
    "test36": "bottom-up features, 36 boxes per image: test2015 images",
    "adaptive": "bottom-up features, 10 to 100 boxes per image: train2014 + val2014 images",
    "test_adaptive": "bottom-up features, 10 to 100 boxes per image: test2015 images",
    "glove": "GloVe 6B word vectors (the 300-d file only is unpacked)",
    "vqacp": "VQA-CP v2 questions and annotations: train, test (plain JSON files)",
    "vg": "Visual Genome v1.2 question-answer pairs and image metadata (coco_id), for data=vqa2_vg",
}


def base_url(host: str) -> str:
    """The base URL of `host`, or the one its environment variable names."""
    env, default = HOSTS[host]
    return (os.environ.get(env) or default).rstrip("/")


def format_mb(mb: float) -> str:
    """`7` -> "about 7 MB", `25000` -> "about 25 GB"."""
    if mb < 1000:
        return f"about {mb:.0f} MB"
    gb = mb / 1000
    return f"about {gb:.1f} GB" if gb < 10 else f"about {gb:.0f} GB"


@dataclass(frozen=True)
class Archive:
    """One official download: a zip file on one host."""

    name: str
    group: str
    host: str
    #: size of the zip file, MB
    download_mb: int

    @property
    def url(self) -> str:
        return f"{base_url(self.host)}/{self.name}"


@dataclass(frozen=True)
class Source:
    """Where one raw file comes from: its archive, the path inside it, its size unpacked."""

    path: str
    archive: Archive
    #: path inside the zip; the file is moved to `path` under raw_dir when it differs
    member: str
    unpacked_mb: int
    description: str

    @property
    def url(self) -> str:
        return self.archive.url

    @property
    def group(self) -> str:
        return self.archive.group

    @property
    def download_mb(self) -> int:
        return self.archive.download_mb


_Q_TRAIN = Archive("v2_Questions_Train_mscoco.zip", "questions", "vqa", 7)
_Q_VAL = Archive("v2_Questions_Val_mscoco.zip", "questions", "vqa", 3)
_Q_TEST = Archive("v2_Questions_Test_mscoco.zip", "questions", "vqa", 9)
_A_TRAIN = Archive("v2_Annotations_Train_mscoco.zip", "annotations", "vqa", 21)
_A_VAL = Archive("v2_Annotations_Val_mscoco.zip", "annotations", "vqa", 10)
_F36 = Archive("trainval_36.zip", "features36", "features", 25000)
_T36 = Archive("test2015_36.zip", "test36", "features", 17000)
_FAD = Archive("trainval.zip", "adaptive", "features", 23000)
_TAD = Archive("test2015.zip", "test_adaptive", "features", 15000)
_GLOVE = Archive("glove.6B.zip", "glove", "glove", 862)
# Visual Genome's sizes are estimates, not measured: nothing could be downloaded where they were written
_VG_QA = Archive("question_answers.json.zip", "vg", "vg", 100)
_VG_IMAGES = Archive("image_data.json.zip", "vg", "vg", 2)

ARCHIVES: tuple[Archive, ...] = (
    _Q_TRAIN,
    _Q_VAL,
    _Q_TEST,
    _A_TRAIN,
    _A_VAL,
    _F36,
    _T36,
    _FAD,
    _TAD,
    _GLOVE,
    _VG_QA,
    _VG_IMAGES,
)


def _source(path: str, archive: Archive, unpacked_mb: int, description: str, member: str = "") -> Source:
    return Source(path, archive, member or path, unpacked_mb, description)


#: path relative to data.raw_dir -> where it comes from
SOURCES: dict[str, Source] = {
    s.path: s
    for s in (
        _source("v2_OpenEnded_mscoco_train2014_questions.json", _Q_TRAIN, 42, "train2014 questions"),
        _source("v2_OpenEnded_mscoco_val2014_questions.json", _Q_VAL, 20, "val2014 questions"),
        _source("v2_OpenEnded_mscoco_test2015_questions.json", _Q_TEST, 42, "test2015 questions"),
        _source("v2_OpenEnded_mscoco_test-dev2015_questions.json", _Q_TEST, 16, "test-dev2015 questions"),
        _source("v2_mscoco_train2014_annotations.json", _A_TRAIN, 356, "train2014 annotations"),
        _source("v2_mscoco_val2014_annotations.json", _A_VAL, 172, "val2014 annotations"),
        _source(
            "trainval_36/trainval_resnet101_faster_rcnn_genome_36.tsv",
            _F36,
            49000,
            "36 boxes per image for the 123,287 train2014 + val2014 images",
        ),
        _source(
            "test2015_36/test2015_resnet101_faster_rcnn_genome_36.tsv",
            _T36,
            32000,
            "36 boxes per image for the 81,434 test2015 images (test-dev2015 is a subset)",
        ),
        _source(
            "trainval/karpathy_train_resnet101_faster_rcnn_genome.tsv.0",
            _FAD,
            20700,
            "10-100 boxes per image, Karpathy train split, first part",
        ),
        _source(
            "trainval/karpathy_train_resnet101_faster_rcnn_genome.tsv.1",
            _FAD,
            20700,
            "10-100 boxes per image, Karpathy train split, second part",
        ),
        _source(
            "trainval/karpathy_val_resnet101_faster_rcnn_genome.tsv",
            _FAD,
            1800,
            "10-100 boxes per image, Karpathy val split (5,000 images)",
        ),
        _source(
            "trainval/karpathy_test_resnet101_faster_rcnn_genome.tsv",
            _FAD,
            1800,
            "10-100 boxes per image, Karpathy test split (5,000 images)",
        ),
        _source(
            "test2015/test2015_resnet101_faster_rcnn_genome.tsv",
            _TAD,
            28000,
            "10-100 boxes per image for the 81,434 test2015 images",
        ),
        _source(
            "glove/glove.6B.300d.txt",
            _GLOVE,
            1040,
            "GloVe 6B, 300-d vectors (400,000 words)",
            member="glove.6B.300d.txt",
        ),
        _source(
            "visual_genome/question_answers.json",
            _VG_QA,
            350,
            "Visual Genome v1.2: 1.4 million question-answer pairs on 108,077 images",
            member="question_answers.json",
        ),
        _source(
            "visual_genome/image_data.json",
            _VG_IMAGES,
            17,
            "Visual Genome v1.2: each image's coco_id (null when it is not a COCO image)",
            member="image_data.json",
        ),
    )
}


@dataclass(frozen=True)
class PlainFile:
    """A raw file fetched as it is, not out of an archive (`add_file` in the script)."""

    path: str
    group: str
    host: str
    #: its size, MB (approximate: worked out from the VQA v2 files of the same questions)
    mb: int
    description: str

    @property
    def url(self) -> str:
        return f"{base_url(self.host)}/{self.path}"


#: VQA-CP v2's four files (data=vqacp2): plain JSON files on the authors' page, not archives
PLAIN_FILES: dict[str, PlainFile] = {
    f.path: f
    for f in (
        PlainFile("vqacp_v2_train_questions.json", "vqacp", "vqacp", 50, "VQA-CP v2 train questions"),
        PlainFile("vqacp_v2_test_questions.json", "vqacp", "vqacp", 25, "VQA-CP v2 test questions"),
        PlainFile("vqacp_v2_train_annotations.json", "vqacp", "vqacp", 350, "VQA-CP v2 train annotations"),
        PlainFile("vqacp_v2_test_annotations.json", "vqacp", "vqacp", 180, "VQA-CP v2 test annotations"),
    )
}


@dataclass(frozen=True)
class Group:
    """A download group of the script: its archives and what they take on disk."""

    name: str
    description: str
    archives: tuple[Archive, ...]
    files: tuple[Source, ...]
    plain: tuple[PlainFile, ...] = ()

    @property
    def download_mb(self) -> int:
        return sum(a.download_mb for a in self.archives) + sum(f.mb for f in self.plain)

    @property
    def unpacked_mb(self) -> int:
        return sum(s.unpacked_mb for s in self.files) + sum(f.mb for f in self.plain)

    @property
    def disk_mb(self) -> int:
        """Disk needed while unpacking: the zips plus the files taken out of them (and the plain files)."""
        return sum(a.download_mb for a in self.archives) + self.unpacked_mb


def groups() -> list[Group]:
    """The download groups, in the script's order (`all` is every one of them)."""
    return [
        Group(
            name,
            description,
            tuple(a for a in ARCHIVES if a.group == name),
            tuple(s for s in SOURCES.values() if s.group == name),
            tuple(f for f in PLAIN_FILES.values() if f.group == name),
        )
        for name, description in GROUPS.items()
    ]


def default_raw_dir() -> Path:
    """Where the script puts the raw files when it is not told: `${BUTD_DATA_DIR:-data}/vqa2/raw`."""
    return Path(os.environ.get("BUTD_DATA_DIR") or "data") / "vqa2" / "raw"


def download_command(groups: str, raw_dir: str | Path | None = None) -> str:
    """`bash scripts/download_vqa2.sh GROUP...`, with `--raw-dir` when raw_dir is not the default."""
    command = f"bash {SCRIPT} {groups}"
    if raw_dir is not None and Path(raw_dir).resolve() != default_raw_dir().resolve():
        command += f" --raw-dir {raw_dir}"
    return command


def _relative(name: str | Path) -> str:
    return str(PurePosixPath(*Path(name).parts)).removeprefix("./")


def how_to_get(relative_name: str | Path, raw_dir: str | Path | None = None) -> str:
    """One line saying how to get the raw file `relative_name` (a path relative to data.raw_dir).

    `raw_dir`, when given and not the script's default, is added to the command as `--raw-dir`.
    """
    source = SOURCES.get(_relative(relative_name))
    plain = PLAIN_FILES.get(_relative(relative_name))
    if plain is not None:
        return f"`{download_command(plain.group, raw_dir)}` ({plain.url}, {format_mb(plain.mb)})"
    if source is None:
        return gqa_how_to_get(relative_name, raw_dir) or (
            "not an official file: check data.raw_dir and the data config"
        )
    archive = source.archive
    return (
        f"`{download_command(archive.group, raw_dir)}` "
        f"({archive.name} from {archive.url}, {format_mb(archive.download_mb)})"
    )


def describe_missing(missing: Iterable[Path], raw_dir: str | Path) -> list[str]:
    """Message lines for missing raw files: each path, then how to get it; then, when they come
    from several download groups, the one command that fetches them all."""
    lines = []
    needed: list[str] = []
    for path in missing:
        try:
            relative: str | Path = Path(path).relative_to(raw_dir)
        except ValueError:
            relative = path
        lines += [f"  - {path}", f"    get it: {how_to_get(relative, raw_dir)}"]
        source = SOURCES.get(_relative(relative)) or PLAIN_FILES.get(_relative(relative))
        if source is not None and source.group not in needed:
            needed.append(source.group)
    if len(needed) > 1:
        ordered = " ".join(g for g in GROUPS if g in needed)
        lines.append(f"  all of them at once: `{download_command(ordered, raw_dir)}`")
    return lines


# ---------------------------------------------------------------------------------------------
# GQA (data=gqa, conf/data/gqa.yaml): its own download script, host and groups. Each archive is
# unpacked into one folder under the GQA raw dir (`data/gqa/raw` by default). The questions zip's
# size is the one GQA's download page lists; the others are estimates, not measured (nothing
# could be downloaded where this was written): the unpacked object files are worked out from
# their shapes (148,854 images x 100 boxes x 2048 float32 features, plus boxes) as an upper
# bound, HDF5 compression would make them smaller.

#: the GQA download script, relative to the repository root
GQA_SCRIPT = "scripts/download_gqa.sh"
#: GQA's host (kept apart from HOSTS, the VQA v2 script's), overridable like the others
GQA_HOST = ("BUTD_GQA_URL", "https://nlp.stanford.edu/data/gqa")


@dataclass(frozen=True)
class GQAArchive:
    """One GQA download: a zip unpacked into the folder `folder` of the raw dir."""

    group: str
    name: str
    folder: str
    download_mb: int
    unpacked_mb: int
    description: str
    estimated: bool

    @property
    def url(self) -> str:
        env, default = GQA_HOST
        return f"{(os.environ.get(env) or default).rstrip('/')}/{self.name}"


GQA_ARCHIVES: tuple[GQAArchive, ...] = (
    GQAArchive(
        "questions", "questions1.2.zip", "questions1.2", 1400, 6000,
        "questions v1.2: train/val/testdev/test/challenge, balanced and all", estimated=False,
    ),
    GQAArchive(
        "eval", "eval.zip", "eval", 500, 2000,
        "the evaluation's choices files (val_choices.json, train_choices/)", estimated=True,
    ),
    GQAArchive(
        "objects", "objectFeatures.zip", "objects", 32000, 123000,
        "object features: gqa_objects_{0..15}.h5 and gqa_objects_info.json", estimated=True,
    ),
)  # fmt: skip


def gqa_default_raw_dir() -> Path:
    """Where the GQA script puts the raw files when it is not told: `${BUTD_DATA_DIR:-data}/gqa/raw`."""
    return Path(os.environ.get("BUTD_DATA_DIR") or "data") / "gqa" / "raw"


def gqa_how_to_get(relative_name: str | Path, raw_dir: str | Path | None = None) -> str | None:
    """How to get a GQA raw file (relative to data.raw_dir), or None when it is not one."""
    first = PurePosixPath(_relative(relative_name)).parts[:1]
    archive = next((a for a in GQA_ARCHIVES if first == (a.folder,)), None)
    if archive is None:
        return None
    command = f"bash {GQA_SCRIPT} {archive.group}"
    if raw_dir is not None and Path(raw_dir).resolve() != gqa_default_raw_dir().resolve():
        command += f" --raw-dir {raw_dir}"
    size = format_mb(archive.download_mb) + (", estimated" if archive.estimated else "")
    return f"`{command}` ({archive.name} from {archive.url}, {size})"
