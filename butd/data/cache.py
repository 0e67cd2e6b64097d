"""The processed cache: built once from the raw files by `prepare`, read by the DataModule.

Layout of `data.cache_dir`:

- `manifest.json`: what produced the cache (settings, sources, counts, format version).
  Written last, so a cache without it is incomplete and never loads.
- `vocab.json`, `answers.json`: the word vocabulary and the answer list (label order).
- `glove.npy`: float32 [ntoken, emb_dim] embedding initialisation (zeros for words GloVe lacks).
- `{split}.h5`: one file per prepared split, self-contained:
  - `images/features` float16 [N, K, D], `images/boxes` float32 [N, K, 4],
    `images/spatial` float32 [N, K, 6], `images/image_id` int64 [N], `images/size` [N, 2]
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
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from butd import __version__
from butd.data.answers import answer_vocabulary, compute_targets
from butd.data.config import DataConfig
from butd.data.features import decode_row, iter_tsv, spatial_features
from butd.data.official import write_official_tables
from butd.data.sources import describe_missing
from butd.data.text import Vocabulary, load_glove
from butd.errors import UserError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
VOCAB = "vocab.json"
ANSWERS = "answers.json"
GLOVE = "glove.npy"
PARTIAL = ".partial"
_STR = h5py.string_dtype(encoding="utf-8")


class CacheError(UserError):
    """The cache is missing, incomplete or made with other settings; the message says how to fix it."""


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
    names: list[str] = []
    needed_splits = set(cfg.vocab_splits) | set(cfg.prepare_splits)
    names += [cfg.questions[s] for s in cfg.questions if s in needed_splits]
    names += [
        cfg.annotations[s] for s in cfg.annotations if s in set(cfg.answer_splits) | set(cfg.prepare_splits)
    ]
    names += list(cfg.features)
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
            lines.append("Put the official VQA v2 files there (see README, 'Real data'), then run:")
        else:
            lines.append("The raw files are present; build the cache with:")
        lines.append(f"  {prepare_command(cfg)}")
        raise CacheError("\n".join(lines))
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CacheError(
            f"{manifest_path} is not valid JSON ({err}); rebuild with `{prepare_command(cfg)} force=true`"
        ) from err
    diff = settings_diff(manifest.get("settings", {}), cfg.cache_settings())
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
    return CacheInfo(root=root, manifest=manifest)


# ---------------------------------------------------------------------------------------------
# Building


def _read_json(path: Path, *, key: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            content = json.load(fh)
    except json.JSONDecodeError as err:
        raise CacheError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(content, dict) or key not in content:
        raise CacheError(f"{path} has no '{key}' list; is it an official VQA v2 file?")
    return content[key]


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    )


class _SplitWriter:
    """Streams image rows of one split into `{split}.h5.partial`."""

    def __init__(self, path: Path, *, capacity: int, num_boxes: int, feature_dim: int) -> None:
        self.path = path
        self.h5 = h5py.File(path, "w")
        g = self.h5.create_group("images")
        k, d = num_boxes, feature_dim

        def make(name: str, shape: tuple[int, ...], dtype: str, chunks=True):
            return g.create_dataset(
                name, (capacity, *shape), dtype=dtype, maxshape=(None, *shape), chunks=chunks
            )

        self.features = make("features", (k, d), "f2", chunks=(1, k, d))
        self.boxes = make("boxes", (k, 4), "f4")
        self.spatial = make("spatial", (k, 6), "f4")
        self.image_id = make("image_id", (), "i8")
        self.size = make("size", (2,), "f4")
        self.row_of: dict[int, int] = {}

    def add(self, item) -> None:
        row = len(self.row_of)
        self.features[row] = item.features.astype(np.float16)
        self.boxes[row] = item.boxes
        self.spatial[row] = spatial_features(item.boxes, item.width, item.height)
        self.image_id[row] = item.image_id
        self.size[row] = (item.width, item.height)
        self.row_of[item.image_id] = row

    def finish_images(self) -> None:
        """Trim the datasets to the images actually found in the feature files."""
        for ds in (self.features, self.boxes, self.spatial, self.image_id, self.size):
            ds.resize(len(self.row_of), axis=0)


def prepare(cfg: DataConfig, *, force: bool = False, progress: bool = True) -> CacheInfo:
    """Build the cache for `cfg` from its raw files; a current cache is left alone.

    New files are written under `.partial` names and renamed only when every one is
    complete, so an interrupted run never damages an existing cache nor leaves one that loads.
    """
    if not force:
        try:
            info = load_cache(cfg)
        except CacheError:
            pass
        else:
            log.info("cache at %s is complete and matches data=%s: nothing to do", info.root, cfg.name)
            return info
    missing = [p for p in raw_files(cfg) if not p.exists()]
    if missing:
        raise CacheError(
            f"cannot prepare data={cfg.name}: raw files missing under {cfg.raw_path}:\n"
            + "\n".join(describe_missing(missing, cfg.raw_path))
            + "\nDownload the official VQA v2 files (see README, 'Real data')."
        )
    cfg.cache_path.mkdir(parents=True, exist_ok=True)
    try:
        _build(cfg, progress=progress)
    except BaseException:
        # an interrupted or failed build leaves the earlier cache as it was, and no debris
        for leftover in cfg.cache_path.glob("*" + PARTIAL):
            leftover.unlink(missing_ok=True)
        raise
    return load_cache(cfg)


def _build(cfg: DataConfig, *, progress: bool) -> None:
    started = time.time()
    root = cfg.cache_path

    questions = {
        s: _read_json(cfg.raw_path / cfg.questions[s], key="questions")
        for s in dict.fromkeys([*cfg.vocab_splits, *cfg.prepare_splits])
    }
    annotated = [s for s in cfg.annotations if s in set(cfg.answer_splits) | set(cfg.prepare_splits)]
    annotations = {s: _read_json(cfg.raw_path / cfg.annotations[s], key="annotations") for s in annotated}

    vocab = Vocabulary()
    for s in cfg.vocab_splits:
        for q in questions[s]:
            vocab.add_question(q["question"])
    answers = answer_vocabulary([a for s in cfg.answer_splits for a in annotations[s]], cfg.min_answer_count)
    if not answers:
        raise CacheError(
            f"no answer occurs for at least data.min_answer_count={cfg.min_answer_count} "
            f"questions in {cfg.answer_splits}; lower it for a small data set"
        )
    if cfg.glove:
        glove, glove_found = load_glove(cfg.raw_path / cfg.glove, vocab.idx2word, cfg.emb_dim)
    else:
        glove, glove_found = np.zeros((len(vocab), cfg.emb_dim), np.float32), 0

    # Images each split needs, then one streaming pass over the feature files.
    wanted = {s: {int(q["image_id"]) for q in questions[s]} for s in cfg.prepare_splits}
    writers: dict[str, _SplitWriter] = {}
    try:
        feature_dim = _stream_features(cfg, wanted, writers, progress=progress)
        split_counts: dict[str, Any] = {}
        for s in cfg.prepare_splits:
            if s not in writers:
                raise CacheError(f"no image of split '{s}' has features in {cfg.features}")
            writers[s].finish_images()
            split_counts[s] = _write_questions(
                writers[s], questions[s], annotations.get(s), vocab, answers, cfg
            )
    finally:
        for w in writers.values():
            w.h5.close()

    manifest = {
        "format_version": cfg.cache_settings()["format_version"],
        "name": cfg.name,
        "settings": cfg.cache_settings(),
        "sources": {str(p.relative_to(cfg.raw_path)): p.stat().st_size for p in raw_files(cfg)},
        "counts": {
            "ntoken": len(vocab),
            "num_answers": len(answers),
            "feature_dim": feature_dim,
            "glove_words_found": glove_found,
            "splits": split_counts,
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.time() - started, 1),
        "butd_version": __version__,
    }
    _commit(root, writers, vocab, answers, glove, manifest)


def _stream_features(cfg: DataConfig, wanted: dict[str, set[int]], writers: dict, *, progress: bool) -> int:
    """One pass over the feature TSVs, each wanted image written to its splits; returns D.

    An image may belong to several splits (test-dev2015 images are test2015 images).
    """
    splits_of_image: dict[int, list[str]] = {}
    for s in wanted:
        for i in wanted[s]:
            splits_of_image.setdefault(i, []).append(s)
    feature_dim: int | None = None
    total = sum((cfg.raw_path / f).stat().st_size for f in cfg.features)
    with _progress(progress) as bar:
        task = bar.add_task(f"features -> {cfg.cache_path}", total=total)
        for name in cfg.features:
            path = cfg.raw_path / name
            for line_no, line in iter_tsv(path):
                bar.advance(task, len(line))
                item = decode_row(line, path=path, line_no=line_no)
                splits = splits_of_image.get(item.image_id)
                if splits is None:
                    continue
                if item.boxes.shape[0] != cfg.num_boxes:
                    raise CacheError(
                        f"{path}:{line_no}: image {item.image_id} has {item.boxes.shape[0]} boxes "
                        f"but data.num_boxes={cfg.num_boxes}; set data.num_boxes to match the file"
                    )
                if feature_dim is None:
                    feature_dim = item.features.shape[1]
                elif item.features.shape[1] != feature_dim:
                    raise CacheError(
                        f"{path}:{line_no}: image {item.image_id} has feature size "
                        f"{item.features.shape[1]}, earlier rows had {feature_dim}"
                    )
                for split in splits:
                    if split not in writers:
                        writers[split] = _SplitWriter(
                            split_file(cfg.cache_path, split).with_suffix(".h5" + PARTIAL),
                            capacity=len(wanted[split]),
                            num_boxes=cfg.num_boxes,
                            feature_dim=feature_dim,
                        )
                    if item.image_id in writers[split].row_of:
                        raise CacheError(f"{path}:{line_no}: image {item.image_id} appears twice")
                    writers[split].add(item)
    if feature_dim is None:
        raise CacheError(
            f"no image of splits {cfg.prepare_splits} was found in the feature files "
            f"{[str(cfg.raw_path / f) for f in cfg.features]}"
        )
    return feature_dim


def _write_questions(w, qs, anns, vocab, answers, cfg) -> dict[str, int]:
    """Questions whose image has features, their tokens, and (if annotated) CSR targets."""
    by_qid = {int(a["question_id"]): a for a in anns} if anns is not None else None
    kept = [q for q in qs if int(q["image_id"]) in w.row_of]
    if by_qid is not None:
        unannotated = [q["question_id"] for q in kept if int(q["question_id"]) not in by_qid]
        if unannotated:
            raise CacheError(
                f"{len(unannotated)} questions have no annotation, e.g. question_id "
                f"{unannotated[0]}; do the questions and annotations files belong together?"
            )
    n = len(kept)
    g = w.h5.create_group("questions")
    g.create_dataset("question_id", data=np.array([q["question_id"] for q in kept], np.int64))
    image_ids = np.array([q["image_id"] for q in kept], np.int64)
    g.create_dataset("image_id", data=image_ids)
    g.create_dataset("image_index", data=np.array([w.row_of[int(i)] for i in image_ids], np.int32))
    tokens = np.array(
        [vocab.encode(q["question"], max_len=cfg.max_question_len) for q in kept], np.int32
    ).reshape(n, cfg.max_question_len)
    g.create_dataset("tokens", data=tokens)
    g.create_dataset("question", data=[q["question"] for q in kept], dtype=_STR)
    w.h5.attrs["split"] = w.path.name.split(".")[0]
    w.h5.attrs["has_targets"] = by_qid is not None
    if by_qid is not None:
        anns_kept = [by_qid[int(q["question_id"])] for q in kept]
        for key in ("question_type", "answer_type", "multiple_choice_answer"):
            g.create_dataset(key, data=[str(a.get(key, "")) for a in anns_kept], dtype=_STR)
        targets = compute_targets(
            anns_kept, answers, normalize_annotator_answers=cfg.normalize_annotator_answers
        )
        label_of = {a: i for i, a in enumerate(answers)}
        offsets = np.zeros(n + 1, np.int64)
        labels: list[int] = []
        scores: list[float] = []
        for i, t in enumerate(targets):
            labels += [label_of[a] for a in t]
            scores += list(t.values())
            offsets[i + 1] = len(labels)
        t = w.h5.create_group("targets")
        t.create_dataset("offsets", data=offsets)
        t.create_dataset("labels", data=np.array(labels, np.int32))
        t.create_dataset("scores", data=np.array(scores, np.float32))
        write_official_tables(w.h5, anns_kept, answers)
    return {
        "questions": n,
        "dropped_questions": len(qs) - n,
        "images": len(w.row_of),
    }


def _commit(root: Path, writers, vocab, answers, glove, manifest) -> None:
    """Swap the new cache in: drop the old manifest, rename files, write the manifest last."""
    partial = {
        root / VOCAB: json.dumps(vocab.to_json(), ensure_ascii=False),
        root / ANSWERS: json.dumps(answers, ensure_ascii=False),
    }
    for final, text in partial.items():
        Path(str(final) + PARTIAL).write_text(text, encoding="utf-8")
    with open(str(root / GLOVE) + PARTIAL, "wb") as fh:
        np.save(fh, glove)
    (root / MANIFEST).unlink(missing_ok=True)
    for final in [root / VOCAB, root / ANSWERS, root / GLOVE] + [split_file(root, s) for s in writers]:
        os.replace(str(final) + PARTIAL, final)
    tmp = root / (MANIFEST + PARTIAL)
    tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    os.replace(tmp, root / MANIFEST)
