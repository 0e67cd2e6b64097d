"""The tables of prepared split files, for one split or several trained on together.

`SplitTables.load([train.h5, val.h5])` reads the per-question tables of each file (tokens,
targets, official-accuracy tables) and the per-image box index, and concatenates them: image
rows are renumbered so `image_index` points into the joint image list, and each image remembers
which file holds its boxes and where. The features themselves stay on disk; the stores
(`VQABatches`, `TensorSplit`) read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from butd.cache.load import box_ranges
from butd.errors import UserError
from butd.vqa.csr import CSR, concat_csr
from butd.vqa.official import answer_type_codes


@dataclass
class SplitTables:
    """Per-question and per-image tables of the files `paths`, concatenated in that order."""

    paths: list[Path]
    question_id: np.ndarray  # int64 [Q]
    image_index: np.ndarray  # int64 [Q]: row in the joint image list
    tokens: np.ndarray  # int64 [Q, T]
    image_file: np.ndarray  # int64 [N]: which of `paths` holds the image's boxes
    box_start: np.ndarray  # int64 [N]: the image's first box row within its file
    box_count: np.ndarray  # int64 [N]: boxes stored for the image
    feature_dim: int
    targets: CSR | None = None  # soft scores
    accuracy: CSR | None = None  # official accuracies
    answer_type: np.ndarray | None = None  # int64 [Q] codes (butd.vqa.official)
    question_type: np.ndarray | None = None  # str [Q] (annotated splits; butd.data.priors)

    @property
    def has_targets(self) -> bool:
        return self.targets is not None

    def counts(self, use_boxes: int | None) -> np.ndarray:
        """Boxes each image contributes: its own, at most the first `use_boxes`."""
        return self.box_count if use_boxes is None else np.minimum(self.box_count, use_boxes)

    @classmethod
    def load(cls, paths: Sequence[Path]) -> SplitTables:
        parts = [_read_tables(Path(p)) for p in paths]
        annotated = {p["targets"] is not None for p in parts}
        if len(annotated) > 1:
            raise UserError(
                f"cannot train on {[str(p) for p in paths]} together: some have annotations and some do "
                "not (data.train_splits must name annotated splits only)"
            )
        dims = {p["feature_dim"] for p in parts}
        if len(dims) > 1:
            raise UserError(f"{[str(p) for p in paths]} have different feature sizes {sorted(dims)}")
        image_base = np.cumsum([0] + [len(p["box_count"]) for p in parts])
        tables = cls(
            paths=[Path(p) for p in paths],
            question_id=np.concatenate([p["question_id"] for p in parts]),
            image_index=np.concatenate(
                [p["image_index"] + b for p, b in zip(parts, image_base, strict=False)]
            ),
            tokens=np.concatenate([p["tokens"] for p in parts]),
            image_file=np.concatenate(
                [np.full(len(p["box_count"]), i, np.int64) for i, p in enumerate(parts)]
            ),
            box_start=np.concatenate([p["box_start"] for p in parts]),
            box_count=np.concatenate([p["box_count"] for p in parts]),
            feature_dim=dims.pop(),
        )
        if parts[0]["targets"] is not None:
            tables.targets = concat_csr([p["targets"] for p in parts])
            tables.accuracy = concat_csr([p["accuracy"] for p in parts])
            tables.answer_type = np.concatenate([p["answer_type"] for p in parts])
            tables.question_type = np.concatenate([p["question_type"] for p in parts])
        return tables


def _read_tables(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        q, images = f["questions"], f["images"]
        start, count = box_ranges(images)
        out = {
            "question_id": q["question_id"][:],
            "image_index": q["image_index"][:].astype(np.int64),
            "tokens": q["tokens"][:].astype(np.int64),
            "box_start": start,
            "box_count": count,
            "feature_dim": int(images["features"].shape[1]),
            "targets": None,
        }
        if f.attrs["has_targets"]:
            out["targets"] = (f["targets/offsets"][:], f["targets/labels"][:], f["targets/scores"][:])
            out["accuracy"] = (f["vqa_acc/offsets"][:], f["vqa_acc/labels"][:], f["vqa_acc/scores"][:])
            out["answer_type"] = answer_type_codes(q["answer_type"].asstr()[:])
            out["question_type"] = q["question_type"].asstr()[:].astype(object)
        return out


def padded_boxes(starts: np.ndarray, counts: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Box rows of images laid out [n, width]: the row index (0 in padding) and a validity mask."""
    slots = np.arange(width)
    valid = slots[None, :] < counts[:, None]
    return np.where(valid, starts[:, None] + slots[None, :], 0), valid
