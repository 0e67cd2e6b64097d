"""The cache's format: its file names, its format version and its manifest, one typed record.

`butd.preparation` writes a `Manifest` last, once every other file of the cache is complete;
`butd.cache.load` reads the same record back (`Manifest.read`) and checks it before anything else
in the cache is trusted. The JSON keys are the record's field names.

Format versions (CHANGELOG.md keeps the history): 1, the first layout; 2 added the official
metric's tables; 3 stores one row per box with `box_offsets` (10-100 adaptive boxes) and the file
sizes in the manifest. An older cache is refused with what changed and the rebuild command.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from butd.config.data import VG, DataConfig
from butd.errors import UserError

#: Bumped whenever the layout of the processed cache changes; old caches are then refused
#: (CHANGELOG.md records each version).
CACHE_FORMAT_VERSION = 3

#: what each cache format version changed, for the message that refuses an older cache
FORMAT_CHANGES = {
    2: "official-metric tables",
    3: "one row per box with box_offsets, for 10-100 adaptive boxes; file sizes in the manifest",
}

MANIFEST = "manifest.json"
VOCAB = "vocab.json"
ANSWERS = "answers.json"
GLOVE = "glove.npy"

#: a split or cache file name: one plain name, no folder, never `..` (`train`, `test-dev2015`)
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=,-]*")


class CacheError(UserError):
    """The cache is missing, incomplete or made with other settings; the message says how to fix it."""


class CacheIntegrityError(UserError):
    """A cache file whose contents butd did not write; the message names the file and dataset."""


def plain_name(name: Any) -> bool:
    return isinstance(name, str) and bool(PLAIN_NAME.fullmatch(name)) and ".." not in name


def _count(value: Any, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def split_file(cache_dir: Path, split: str) -> Path:
    return cache_dir / f"{split}.h5"


def prepare_command(cfg: DataConfig) -> str:
    return f"python -m butd.prepare data={cfg.name}"


def cached_splits(cfg: DataConfig) -> list[str]:
    """The splits the cache holds a file of: `prepare_splits`, then the `extra_data`."""
    return list(dict.fromkeys([*cfg.prepare_splits, *cfg.extra_data]))


def cache_settings(cfg: DataConfig) -> dict[str, Any]:
    """The settings a cache depends on; recorded in its manifest and compared on load.

    The raw format, the hold-out and extra training data are recorded only where they are not
    VQA v2's defaults, so caches made before they existed still load."""
    extra: dict[str, Any] = {}
    if cfg.format != "vqa2":
        extra["format"] = cfg.format
    if cfg.holdout_fraction > 0:
        extra["holdout"] = {"fraction": cfg.holdout_fraction, "seed": cfg.holdout_seed}
    if cfg.changing_priors is not None:
        extra["changing_priors"] = cfg.changing_priors
    if cfg.features_from is not None:
        extra["features_from"] = cfg.features_from
    if cfg.extra_data:
        extra["extra_data"] = list(cfg.extra_data)
    if VG in cfg.extra_data:
        extra["vg"] = dict(cfg.vg)
    if cfg.format == "gqa":
        extra["gqa"] = dict(cfg.gqa)
    return extra | {
        "format_version": CACHE_FORMAT_VERSION,
        "num_boxes": cfg.num_boxes,
        "min_answer_count": cfg.min_answer_count,
        "max_question_len": cfg.max_question_len,
        "emb_dim": cfg.emb_dim,
        "vocab_splits": list(cfg.vocab_splits),
        "answer_splits": list(cfg.answer_splits),
        "prepare_splits": list(cfg.prepare_splits),
        "normalize_annotator_answers": cfg.normalize_annotator_answers,
        "boxes": cfg.boxes,
        "min_boxes": cfg.min_boxes if cfg.boxes == "adaptive" else None,
        "unknown_token": cfg.unknown_token,
        "synthetic": cfg.synthetic,
    }


def raw_files(cfg: DataConfig) -> list[Path]:
    """Every raw file the config needs, as absolute-or-relative paths under raw_dir."""
    if cfg.format == "gqa":
        from butd.vqa.gqa import raw_paths

        return raw_paths(cfg)
    names: list[str] = []
    needed_splits = set(cfg.vocab_splits) | set(cfg.prepare_splits)
    names += [cfg.questions[s] for s in cfg.questions if s in needed_splits]
    names += [
        cfg.annotations[s] for s in cfg.annotations if s in set(cfg.answer_splits) | set(cfg.prepare_splits)
    ]
    if cfg.features_from is None:  # a linked cache reads another cache's features, not the TSVs
        names += list(cfg.features)
    if VG in cfg.extra_data:
        names += [cfg.vg["questions"], cfg.vg["images"]]
    if cfg.glove:
        names.append(cfg.glove)
    return [cfg.raw_path / n for n in dict.fromkeys(names)]


# ---------------------------------------------------------------------------------------------
# The record


@dataclass(kw_only=True)
class BoxCounts:
    """Boxes per image of one split: the fewest, the mean and the most."""

    min: int
    mean: float
    max: int


@dataclass(kw_only=True)
class SplitCounts:
    """One split file's counts: questions Q, images N, boxes per image, and what was dropped."""

    questions: int
    dropped_questions: int = 0
    images: int
    images_without_features: int = 0
    images_without_features_examples: list[int] = field(default_factory=list)
    boxes: BoxCounts


@dataclass(kw_only=True)
class Counts:
    """The sizes every reader checks against: words (`ntoken`, padding excluded), answers, floats per
    box feature, each split's counts; and what the build skipped or clipped."""

    ntoken: int
    num_answers: int
    feature_dim: int
    glove_words_found: int = 0
    splits: dict[str, SplitCounts]
    skipped_rows: int = 0
    skipped_examples: list[Any] = field(default_factory=list)
    clipped_boxes: int = 0
    clipped_examples: list[Any] = field(default_factory=list)
    #: what the Visual Genome selection kept and dropped (`data.extra_data=[vg]`)
    visual_genome: dict[str, Any] | None = None


@dataclass(kw_only=True)
class Manifest:
    """`manifest.json`: what produced the cache and what it holds; the JSON keys are the fields, in
    their order.

    `settings`: `cache_settings` of the config it was built for (compared key by key on load);
    `sources`: each raw file (relative to raw_dir) -> its fingerprint (`butd.cache.fingerprint`;
    an int, its size, in caches built before fingerprints); `files`: each split file -> its size
    in bytes when written; `features_from`: a linked cache's record of the source cache it views
    (`butd.preparation.linked`); `conversion`: how the features were converted.
    """

    format_version: int
    name: str | None = None
    settings: dict[str, Any]
    sources: dict[str, Any] = field(default_factory=dict)
    counts: Counts
    files: dict[str, int] = field(default_factory=dict)
    created: str | None = None
    seconds: float | None = None
    conversion: dict[str, Any] | None = None
    butd_version: str | None = None
    features_from: dict[str, Any] | None = None

    @property
    def num_boxes(self) -> int:
        return int(self.settings["num_boxes"])

    @property
    def max_question_len(self) -> int:
        return int(self.settings["max_question_len"])

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to `manifest.json` (fields left at None are not written)."""
        out = {k: v for k, v in asdict(self).items() if v is not None}
        if self.counts.visual_genome is None:
            out["counts"].pop("visual_genome")
        return out

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2), encoding="utf-8")

    @classmethod
    def from_json(cls, manifest: Any, path: Path, rebuild: str) -> Manifest:
        """The record of a parsed `manifest.json`, after `check` (CacheIntegrityError otherwise)."""
        check(manifest, path, rebuild)
        counts = dict(manifest["counts"])
        splits = {
            name: SplitCounts(
                **{k: v for k, v in split.items() if k in _SPLIT_FIELDS and k != "boxes"},
                boxes=BoxCounts(**{k: split["boxes"][k] for k in ("min", "mean", "max")}),
            )
            for name, split in counts.pop("splits").items()
        }
        known = {k: v for k, v in manifest.items() if k in _MANIFEST_FIELDS and k != "counts"}
        return cls(
            **known, counts=Counts(**{k: v for k, v in counts.items() if k in _COUNTS_FIELDS}, splits=splits)
        )

    @classmethod
    def read(cls, path: Path, *, command: str) -> Manifest:
        """Load and check `path`; an unreadable, damaged or older manifest is one CacheError that says
        how to rebuild the cache with `command` (`prepare_command`)."""
        rebuild = f"Rebuild it with `{command} force=true`."
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CacheError(
                f"{path} is not valid JSON ({err}); rebuild with `{command} force=true`"
            ) from err
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        if isinstance(manifest, dict) and version != CACHE_FORMAT_VERSION:
            raise CacheError(
                f"the cache at {path.parent} is in format version {version}, this butd reads version "
                f"{CACHE_FORMAT_VERSION} ({FORMAT_CHANGES.get(CACHE_FORMAT_VERSION, 'another layout')}). "
                f"Rebuild it with `{command} force=true` (the old cache is replaced only "
                "once the new one is complete)."
            )
        try:
            return cls.from_json(manifest, path, rebuild)
        except CacheIntegrityError as err:
            raise CacheError(str(err)) from None


_MANIFEST_FIELDS = set(Manifest.__dataclass_fields__)
_COUNTS_FIELDS = set(Counts.__dataclass_fields__) - {"splits"}
_SPLIT_FIELDS = set(SplitCounts.__dataclass_fields__)


def check(manifest: Any, path: Path, rebuild: str) -> None:
    """The manifest's schema: what butd writes, with counts that are counts and names that stay
    inside the cache folder. `rebuild`: the command that makes the cache again."""

    def bad(what: str) -> CacheIntegrityError:
        return CacheIntegrityError(f"{path}: {what}; the cache is damaged or was not made by butd. {rebuild}")

    if not isinstance(manifest, dict):
        raise bad(f"the manifest is a JSON {type(manifest).__name__}, not an object")
    for key in ("settings", "counts"):
        if not isinstance(manifest.get(key), dict):
            raise bad(f"'{key}' is missing or not an object")
    counts = manifest["counts"]
    for key in ("ntoken", "num_answers", "feature_dim"):
        if not _count(counts.get(key), 1):
            raise bad(f"counts.{key}={counts.get(key)!r} is not a positive integer")
    splits = counts.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise bad("counts.splits is missing or empty")
    for name, split in splits.items():
        if not plain_name(name):
            raise bad(f"counts.splits names the split {name!r}, not a plain file name inside the cache")
        if not isinstance(split, dict):
            raise bad(f"counts.splits.{name} is not an object")
        for key in ("questions", "images"):
            if not _count(split.get(key)):
                raise bad(f"counts.splits.{name}.{key}={split.get(key)!r} is not a count")
        boxes = split.get("boxes")
        if not isinstance(boxes, dict) or not all(_count(boxes.get(k)) for k in ("min", "max")):
            raise bad(f"counts.splits.{name}.boxes.min and max are missing or not counts")
        if not isinstance(boxes.get("mean"), int | float) or not _count(split.get("dropped_questions", 0)):
            raise bad(f"counts.splits.{name}: boxes.mean or dropped_questions is not a number")
    files = manifest.get("files", {})
    if not isinstance(files, dict) or not all(plain_name(n) and _count(v) for n, v in files.items()):
        raise bad("'files' is not a mapping of file names in the cache to sizes")
    if not isinstance(manifest.get("sources", {}), dict):
        raise bad("'sources' is not a mapping of raw file names to fingerprints")
    length = manifest["settings"].get("max_question_len")
    if not _count(length, 1):
        raise bad(f"settings.max_question_len={length!r} is not a positive integer")
    linked = manifest.get("features_from")
    if linked is not None and (
        not isinstance(linked, dict)
        or not isinstance(linked.get("files"), dict)
        or not all(plain_name(n) for n in linked["files"])
    ):
        raise bad("'features_from' does not record the source cache's split files")
