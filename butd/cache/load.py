"""Opening the processed cache: `butd.preparation` builds it, `load_cache` checks it and every reader
(the DataModule, evaluate, predict) opens it through here. It never builds anything: a missing
cache is an error that names `python -m butd.prepare`.

Layout of `data.cache_dir`:

- `manifest.json`: what produced the cache (settings, sources, counts, file sizes, format
  version; the record `butd.cache.manifest.Manifest`). Written last, so a cache without it is
  incomplete and never loads.
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
    `questions/multiple_choice_answer`; the official metric's tables (`butd.vqa.official`):
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

from butd.cache.fingerprint import changed
from butd.cache.integrity import check_cache_files
from butd.cache.manifest import (
    ANSWERS,
    GLOVE,
    MANIFEST,
    VOCAB,
    CacheError,
    CacheIntegrityError,
    Counts,
    Manifest,
    cache_settings,
    prepare_command,
    split_file,
)
from butd.config.data import DataConfig
from butd.vqa.text import Vocabulary

log = logging.getLogger(__name__)


@dataclass
class CacheInfo:
    """A verified cache: its manifest plus accessors for the small tables."""

    root: Path
    manifest: Manifest

    @property
    def counts(self) -> Counts:
        return self.manifest.counts

    @property
    def ntoken(self) -> int:
        return self.counts.ntoken

    @property
    def num_answers(self) -> int:
        return self.counts.num_answers

    @property
    def feature_dim(self) -> int:
        return self.counts.feature_dim

    @property
    def num_boxes(self) -> int:
        return self.manifest.num_boxes

    def split_path(self, split: str) -> Path:
        if split not in self.counts.splits:
            raise CacheError(
                f"split '{split}' is not in the cache at {self.root} "
                f"(prepared: {sorted(self.counts.splits)}); add it to data.prepare_splits "
                "and run prepare again"
            )
        return split_file(self.root, split)

    def vocabulary(self) -> Vocabulary:
        return Vocabulary.from_json(json.loads((self.root / VOCAB).read_text(encoding="utf-8")))

    def answers(self) -> list[str]:
        return json.loads((self.root / ANSWERS).read_text(encoding="utf-8"))

    def glove(self) -> np.ndarray:
        return np.load(self.root / GLOVE)


def settings_diff(cached: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    keys = sorted(set(cached) | set(wanted))
    return [
        f"{k}: cache has {cached.get(k, '<absent>')!r}, config wants {wanted.get(k, '<absent>')!r}"
        for k in keys
        if cached.get(k) != wanted.get(k)
    ]


def load_cache(cfg: DataConfig) -> CacheInfo:
    """Open the cache for `cfg`, or raise `CacheError` saying what is missing or differs.

    Only reads: a missing cache is an error naming the prepare command, which builds it (and names
    any raw file still to download)."""
    root = cfg.cache_path
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise CacheError(
            f"no prepared cache for data={cfg.name}: {manifest_path} does not exist; build it with "
            f"`{prepare_command(cfg)}`"
        )
    rebuild = f"Rebuild it with `{prepare_command(cfg)} force=true`."
    manifest = Manifest.read(manifest_path, command=prepare_command(cfg))
    diff = settings_diff(manifest.settings, cache_settings(cfg))
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
        + [split_file(root, s) for s in manifest.counts.splits]
        if not p.is_file()
    ]
    if missing:
        raise CacheError(
            f"the cache at {root} is incomplete, missing: {', '.join(map(str, missing))}; "
            f"rebuild with `{prepare_command(cfg)} force=true`"
        )
    check_sources(cfg, manifest)
    if cfg.format == "gqa":  # its features are views of GQA's object files (butd.preparation.gqa)
        from butd.vqa.gqa import object_paths

        gone = [p for p in object_paths(cfg) if not p.is_file()]
        if gone:
            raise CacheError(
                f"the cache at {root} reads its features in place from GQA's object files, and {gone[0]} "
                f"is missing ({len(gone)} of them; HDF5 would read their boxes as NaN). Put them back "
                "(`bash scripts/download_gqa.sh objects`) or point data.raw_dir at them"
            )
    if manifest.features_from is not None:
        check_linked(cfg, manifest.features_from)
    cached_dim = manifest.counts.feature_dim
    if cfg.feature_dim is not None and cached_dim != cfg.feature_dim:
        raise CacheError(
            f"the cache at {root} holds {cached_dim} floats per box feature, data.feature_dim="
            f"{cfg.feature_dim}; rebuild with `{prepare_command(cfg)} force=true` or drop data.feature_dim"
        )
    for name, size in manifest.files.items():
        actual = (root / name).stat().st_size
        if actual != size:
            raise CacheError(
                f"{root / name} is {actual:,} bytes but was {size:,} when prepare wrote it: the file "
                f"is truncated or was replaced (an interrupted copy, a full disk?). Rebuild with "
                f"`{prepare_command(cfg)} force=true`."
            )
    check_small_files(root, manifest, rebuild)
    linked = Path(cfg.features_from) if manifest.features_from is not None and cfg.features_from else None
    try:
        objects = None
        if cfg.format == "gqa":
            from butd.vqa.gqa import object_paths

            objects = object_paths(cfg)
        check_cache_files(root, manifest, linked_from=linked, rebuild=rebuild, gqa_objects=objects)
    except CacheIntegrityError as err:
        raise CacheError(str(err)) from None
    return CacheInfo(root=root, manifest=manifest)


def _lists_strings(value: Any, count: int) -> bool:
    """Whether `value` is a list of `count` strings."""
    return isinstance(value, list) and len(value) == count and all(isinstance(v, str) for v in value)


def check_small_files(root: Path, manifest: Manifest, rebuild: str) -> None:
    """The vocabulary, answer list and GloVe matrix agree with the manifest's counts (the matrix is
    mapped, not read: a shape larger than its file is refused without allocating it)."""
    counts = manifest.counts
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
        (root / ANSWERS, answers, counts.num_answers, "answers"),
        (root / VOCAB, listed, counts.ntoken, "words"),
    ):
        if not _lists_strings(strings, count):
            raise CacheError(f"{path} does not list the {count} {what} of the manifest. {rebuild}")
    emb_dim = manifest.settings.get("emb_dim")
    if shape != (counts.ntoken, emb_dim) or dtype.kind != "f":
        raise CacheError(
            f"{root / GLOVE} holds a {dtype} array of shape {shape}, not the [{counts.ntoken}, {emb_dim}] "
            f"word vectors of the manifest. {rebuild}"
        )


def check_sources(cfg: DataConfig, manifest: Manifest) -> None:
    """Refuse a cache whose raw files changed since it was built (`butd.cache.fingerprint`).

    A manifest from before fingerprints records sizes only: it still loads, with one warning
    that an edit of the same size goes unnoticed until the cache is rebuilt (CHANGELOG.md).
    """
    sources = manifest.sources
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
        created = Manifest.read(manifest, command=f"python -m butd.prepare data.cache_dir={source}").created
    except CacheError as err:
        return str(err)
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
    from butd.vqa.features import FeatureFileError, decode_row, iter_tsv

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
            return Manifest.read(manifest, command=prepare_command(data)).num_boxes, manifest
        except (CacheError, KeyError, TypeError, ValueError):
            return None  # load_cache reports a damaged or older manifest
    return None


def box_ranges(images: h5py.Group) -> tuple[np.ndarray, np.ndarray]:
    """Each image's first box row and box count (int64 [N] each) in a split file's `images/`
    group: from `box_offsets` (the images' boxes laid out one after another), or from
    `box_start` and `counts` (a linked cache, `butd.preparation.linked`)."""
    if "box_start" in images:
        return images["box_start"][:].astype(np.int64), images["counts"][:].astype(np.int64)
    offsets = images["box_offsets"][:]
    return offsets[:-1], np.diff(offsets)
