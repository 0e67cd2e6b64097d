"""The processed cache: built once from the raw files by `prepare`, read by the DataModule.

Layout of `data.cache_dir`:

- `manifest.json`: what produced the cache (settings, sources, counts, file sizes, format
  version). Written last, so a cache without it is incomplete and never loads.
- `vocab.json`, `answers.json`: the word vocabulary and the answer list (label order).
- `glove.npy`: float32 [ntoken, emb_dim] embedding initialisation (zeros for words GloVe lacks).
- `{split}.h5`: one file per prepared split, self-contained:
  - `images/`: the boxes of every image one row per box (`butd.preparation.convert`):
    `features` float16 [B, D], `boxes` float32 [B, 4], `spatial` float32 [B, 6],
    `box_offsets` int64 [N+1], `counts` int64 [N], `image_id` int64 [N], `size` float32 [N, 2];
    a linked cache (`data.features_from`, `butd.preparation.linked`) has `box_start` int64 [N]
    instead of `box_offsets`, and its per-box datasets are views of another cache's files
  - `questions/question_id`, `image_id` int64 [Q], `image_index` int32 [Q] (row in images/),
    `tokens` int32 [Q, T] front-padded, `question`, `question_type`, `answer_type` strings
  - annotated splits: soft-score targets as CSR, `targets/offsets` int64 [Q+1],
    `targets/labels` int32 [nnz], `targets/scores` float32 [nnz], and
    `questions/multiple_choice_answer`; the official metric's tables (`butd.data.official`):
    `questions/gt_answers` [Q, 10] and `vqa_acc/{offsets,labels,scores}`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from butd.config.data import VG, DataConfig
from butd.data.fingerprint import changed
from butd.data.integrity import CacheIntegrityError, check_cache_files, check_manifest
from butd.data.text import Vocabulary
from butd.errors import UserError
from butd.preparation.sources import describe_missing

log = logging.getLogger(__name__)

#: Bumped whenever the layout of the processed cache changes; old caches are then refused
#: (CHANGELOG.md records each version).
CACHE_FORMAT_VERSION = 3

MANIFEST = "manifest.json"
VOCAB = "vocab.json"
ANSWERS = "answers.json"
GLOVE = "glove.npy"
_STR = h5py.string_dtype(encoding="utf-8")


#: what each cache format version changed, for the message that refuses an older cache
FORMAT_CHANGES = {
    2: "official-metric tables",
    3: "one row per box with box_offsets, for 10-100 adaptive boxes; file sizes in the manifest",
}


class CacheError(UserError):
    """The cache is missing, incomplete or made with other settings; the message says how to fix it."""


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


def cached_splits(cfg: DataConfig) -> list[str]:
    """The splits the cache holds a file of: `prepare_splits`, then the `extra_data`."""
    return list(dict.fromkeys([*cfg.prepare_splits, *cfg.extra_data]))


def split_file(cache_dir: Path, split: str) -> Path:
    return cache_dir / f"{split}.h5"


def prepare_command(cfg: DataConfig) -> str:
    return f"python -m butd.prepare data={cfg.name}"


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class CacheInfo:
    """A verified cache: its manifest plus accessors for the small tables."""

    root: Path
    manifest: dict[str, Any]

    @property
    def counts(self) -> dict[str, Any]:
        return self.manifest["counts"]

    @property
    def ntoken(self) -> int:
        return int(self.counts["ntoken"])

    @property
    def num_answers(self) -> int:
        return int(self.counts["num_answers"])

    @property
    def feature_dim(self) -> int:
        return int(self.counts["feature_dim"])

    @property
    def num_boxes(self) -> int:
        return int(self.manifest["settings"]["num_boxes"])

    def split_path(self, split: str) -> Path:
        if split not in self.counts["splits"]:
            raise CacheError(
                f"split '{split}' is not in the cache at {self.root} "
                f"(prepared: {sorted(self.counts['splits'])}); add it to data.prepare_splits "
                "and run prepare again"
            )
        return split_file(self.root, split)

    def vocabulary(self) -> Vocabulary:
        return Vocabulary.from_json(json.loads((self.root / VOCAB).read_text(encoding="utf-8")))

    def answers(self) -> list[str]:
        return json.loads((self.root / ANSWERS).read_text(encoding="utf-8"))

    def glove(self) -> np.ndarray:
        return np.load(self.root / GLOVE)


def raw_files(cfg: DataConfig) -> list[Path]:
    """Every raw file the config needs, as absolute-or-relative paths under raw_dir."""
    if cfg.format == "gqa":
        from butd.data.gqa import raw_paths

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


def settings_diff(cached: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    keys = sorted(set(cached) | set(wanted))
    return [
        f"{k}: cache has {cached.get(k, '<absent>')!r}, config wants {wanted.get(k, '<absent>')!r}"
        for k in keys
        if cached.get(k) != wanted.get(k)
    ]


def load_cache(cfg: DataConfig) -> CacheInfo:
    """Open the cache for `cfg`, or raise `CacheError` saying what is missing or differs."""
    root = cfg.cache_path
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        missing_raw = [p for p in raw_files(cfg) if not p.exists()]
        lines = [f"no prepared cache for data={cfg.name}: {manifest_path} does not exist."]
        if missing_raw:
            lines.append("The raw files are missing too:")
            lines += describe_missing(missing_raw, cfg.raw_path)
            official = "GQA" if cfg.format == "gqa" else "VQA v2"
            lines.append(f"Put the official {official} files there (see README, 'Real data'), then run:")
        else:
            lines.append("The raw files are present; build the cache with:")
        lines.append(f"  {prepare_command(cfg)}")
        raise CacheError("\n".join(lines))
    rebuild = f"Rebuild it with `{prepare_command(cfg)} force=true`."
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CacheError(
            f"{manifest_path} is not valid JSON ({err}); rebuild with `{prepare_command(cfg)} force=true`"
        ) from err
    try:
        check_manifest(manifest, manifest_path, rebuild)
    except CacheIntegrityError as err:
        if isinstance(manifest, dict) and manifest.get("format_version") != CACHE_FORMAT_VERSION:
            pass  # an older format: the version's message below says what to do
        else:
            raise CacheError(str(err)) from None
    version = manifest.get("format_version")
    if version != CACHE_FORMAT_VERSION:
        raise CacheError(
            f"the cache at {root} is in format version {version}, this butd reads version "
            f"{CACHE_FORMAT_VERSION} ({FORMAT_CHANGES.get(CACHE_FORMAT_VERSION, 'another layout')}). "
            f"Rebuild it with `{prepare_command(cfg)} force=true` (the old cache is replaced only "
            "once the new one is complete)."
        )
    diff = settings_diff(manifest.get("settings", {}), cache_settings(cfg))
    if diff:
        raise CacheError(
            f"the cache at {root} was made with other settings than data={cfg.name} asks for:\n"
            + "\n".join(f"  - {d}" for d in diff)
            + f"\nRebuild it with `{prepare_command(cfg)}` (it is replaced only once the new "
            "cache is complete), or point data.cache_dir elsewhere."
        )
    missing = [
        p
        for p in [root / VOCAB, root / ANSWERS, root / GLOVE]
        + [split_file(root, s) for s in manifest["counts"]["splits"]]
        if not p.is_file()
    ]
    if missing:
        raise CacheError(
            f"the cache at {root} is incomplete, missing: {', '.join(map(str, missing))}; "
            f"rebuild with `{prepare_command(cfg)} force=true`"
        )
    check_sources(cfg, manifest)
    if cfg.format == "gqa":  # its features are views of GQA's object files (butd.preparation.gqa)
        from butd.data.gqa import object_paths

        gone = [p for p in object_paths(cfg) if not p.is_file()]
        if gone:
            raise CacheError(
                f"the cache at {root} reads its features in place from GQA's object files, and {gone[0]} "
                f"is missing ({len(gone)} of them; HDF5 would read their boxes as NaN). Put them back "
                "(`bash scripts/download_gqa.sh objects`) or point data.raw_dir at them"
            )
    if "features_from" in manifest:
        check_linked(cfg, manifest["features_from"])
    cached_dim = manifest["counts"].get("feature_dim")
    if cfg.feature_dim is not None and cached_dim != cfg.feature_dim:
        raise CacheError(
            f"the cache at {root} holds {cached_dim} floats per box feature, data.feature_dim="
            f"{cfg.feature_dim}; rebuild with `{prepare_command(cfg)} force=true` or drop data.feature_dim"
        )
    for name, size in manifest.get("files", {}).items():
        actual = (root / name).stat().st_size
        if actual != size:
            raise CacheError(
                f"{root / name} is {actual:,} bytes but was {size:,} when prepare wrote it: the file "
                f"is truncated or was replaced (an interrupted copy, a full disk?). Rebuild with "
                f"`{prepare_command(cfg)} force=true`."
            )
    check_small_files(root, manifest, rebuild)
    linked = Path(cfg.features_from) if "features_from" in manifest and cfg.features_from else None
    try:
        objects = None
        if cfg.format == "gqa":
            from butd.data.gqa import object_paths

            objects = object_paths(cfg)
        check_cache_files(root, manifest, linked_from=linked, rebuild=rebuild, gqa_objects=objects)
    except CacheIntegrityError as err:
        raise CacheError(str(err)) from None
    return CacheInfo(root=root, manifest=manifest)


def _lists_strings(value: Any, count: int) -> bool:
    """Whether `value` is a list of `count` strings."""
    return isinstance(value, list) and len(value) == count and all(isinstance(v, str) for v in value)


def check_small_files(root: Path, manifest: dict[str, Any], rebuild: str) -> None:
    """The vocabulary, answer list and GloVe matrix agree with the manifest's counts (the matrix is
    mapped, not read: a shape larger than its file is refused without allocating it)."""
    counts = manifest["counts"]
    try:
        answers = json.loads((root / ANSWERS).read_text(encoding="utf-8"))
        words = json.loads((root / VOCAB).read_text(encoding="utf-8"))
        glove = np.load(root / GLOVE, mmap_mode="r")  # the header only: a crafted shape maps nothing
        shape, dtype = glove.shape, glove.dtype
        del glove
    except (ValueError, OSError) as err:
        raise CacheError(f"the cache at {root} has a damaged file ({err}). {rebuild}") from None
    listed = words.get("words") if isinstance(words, dict) else None
    for path, strings, count, what in (
        (root / ANSWERS, answers, counts["num_answers"], "answers"),
        (root / VOCAB, listed, counts["ntoken"], "words"),
    ):
        if not _lists_strings(strings, count):
            raise CacheError(f"{path} does not list the {count} {what} of the manifest. {rebuild}")
    emb_dim = manifest["settings"].get("emb_dim")
    if shape != (counts["ntoken"], emb_dim) or dtype.kind != "f":
        raise CacheError(
            f"{root / GLOVE} holds a {dtype} array of shape {shape}, not the [{counts['ntoken']}, {emb_dim}] "
            f"word vectors of the manifest. {rebuild}"
        )


def check_sources(cfg: DataConfig, manifest: dict[str, Any]) -> None:
    """Refuse a cache whose raw files changed since it was built (`butd.data.fingerprint`).

    A manifest from before fingerprints records sizes only: it still loads, with one warning
    that an edit of the same size goes unnoticed until the cache is rebuilt (CHANGELOG.md).
    """
    sources = manifest.get("sources", {})
    if any(isinstance(v, int) for v in sources.values()):
        log.warning(
            "the cache at %s records only the sizes of its raw files (built before fingerprints): an "
            "edit of the same size is not noticed; `%s force=true` records fingerprints",
            cfg.cache_path,
            prepare_command(cfg),
        )
    for name, recorded in sources.items():
        source = cfg.raw_path / name
        if not source.is_file():
            continue
        why, caveat = changed(source, recorded)
        if why:
            raise CacheError(
                f"{source} has changed since the cache at {cfg.cache_path} was built from it ({why}); "
                f"rebuild with `{prepare_command(cfg)} force=true`"
            )
        if caveat:
            log.warning("%s", caveat)


def _link_changed(source: Path, record: dict[str, Any]) -> str | None:
    """How the source cache differs from what a link recorded of it, or None."""
    manifest = source / MANIFEST
    if not manifest.is_file():
        return f"{manifest} does not exist"
    try:
        record_there = json.loads(manifest.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        return f"{manifest} is not valid JSON ({err})"
    created = record_there.get("created") if isinstance(record_there, dict) else None
    if created != record.get("created"):
        return f"it was rebuilt ({created}; the link was made to the one of {record.get('created')})"
    for name, was in record.get("files", {}).items():
        path = source / name
        if not isinstance(was, dict) or not {"size", "mtime_ns"} <= set(was):
            return f"the link's record of {name} is damaged"
        if not path.is_file():
            return f"{path} is missing"
        stat = path.stat()
        if (stat.st_size, stat.st_mtime_ns) != (was["size"], was["mtime_ns"]):
            return f"{path} was rewritten after the link was made (a copy without its times counts too)"
    return None


def check_linked(cfg: DataConfig, record: dict[str, Any]) -> None:
    """Refuse a linked cache (`data.features_from`) whose feature source is gone, was rebuilt or
    changed since the link was made: HDF5 would read a missing source as NaN, a rebuilt one as
    other images' boxes (`butd.preparation.linked`)."""
    if cfg.features_from is None:  # the source comes from the command, never from the file
        raise CacheError(
            f"the cache at {cfg.cache_path} reads its features from another cache, and data={cfg.name} "
            f"does not say which (data.features_from is null). Rebuild it with "
            f"`{prepare_command(cfg)} force=true`"
        )
    source = Path(cfg.features_from)
    why = _link_changed(source, record)
    if why:
        raise CacheError(
            f"the cache at {cfg.cache_path} reads its features from the cache at {source} "
            f"(data.features_from), which has changed: {why}. Make the link again with "
            f"`{prepare_command(cfg)} force=true` (seconds: nothing is converted)."
        )


def stored_boxes(data: Any) -> tuple[int, Path] | None:
    """Boxes per image that the data on disk holds, and where that was read: the first row of the
    feature file (what `prepare` would store), else the cache manifest. None when neither exists."""
    from butd.preparation.features import FeatureFileError, decode_row, iter_tsv

    for name in data.features:
        path = data.raw_path / name
        if path.is_file():
            try:
                for line_no, line in iter_tsv(path):
                    return decode_row(line, path=path, line_no=line_no).boxes.shape[0], path
            except (OSError, UnicodeDecodeError, FeatureFileError):
                return None  # prepare reports a damaged feature file with its own message
    manifest = data.cache_path / MANIFEST
    if manifest.is_file():
        try:
            return int(json.loads(manifest.read_text())["settings"]["num_boxes"]), manifest
        except (ValueError, KeyError, TypeError):
            return None  # load_cache reports a damaged manifest
    return None
