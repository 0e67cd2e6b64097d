"""Tensor-resident splits: batches gathered by index where the model runs.

The HDF5 path (`VQABatches`) reads features per batch from disk. Here a whole split lives in
tensors, on the GPU (`feature_store=gpu`) or in host memory (`ram`, pinned when a GPU is
present): features in float16, tokens, image rows and the targets as a fixed-width padded
table. A batch is a handful of index operations, with no per-question Python and no host
synchronisation, so the GPU is never waiting on the input path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Sampler

FEATURE_STORES = ("h5", "ram", "gpu", "auto")


def reuse_freed_memory(limit: int = 1 << 30) -> bool:
    """Have glibc keep and reuse freed blocks of up to `limit` bytes.

    A batch gathered on the CPU is tens of MB. By default glibc maps each block that size
    fresh from the OS and unmaps it when freed, so every batch pays a page fault per 4 KB
    (a 128-question batch: 15 ms gathered, 4 ms with reuse). Process-wide; returns whether
    it applied (not on other C libraries).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, limit // 2) and libc.mallopt(m_trim_threshold, limit))
    except (OSError, AttributeError):
        return False


def _available_ram() -> int:
    """MemAvailable from /proc/meminfo, in bytes (0 where it cannot be read)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def split_nbytes(path: Path) -> int:
    """Bytes a split's features take once loaded (float16, as stored)."""
    with h5py.File(path, "r") as f:
        ds = f["images/features"]
        return int(np.prod(ds.shape)) * ds.dtype.itemsize


def choose_store(
    store: str,
    paths: list[Path],
    *,
    headroom: float = 0.8,
    size_of: Callable[[Path], int] = split_nbytes,
) -> str:
    """Resolve `auto`: the GPU if the splits fit in its free memory, else RAM, else HDF5.

    `size_of` reads a split's feature bytes (the caller may wrap it to report bad files).
    """
    if store != "auto":
        return store
    need = sum(size_of(p) for p in paths)
    if torch.cuda.is_available() and need < headroom * torch.cuda.mem_get_info()[0]:
        return "gpu"
    if need < headroom * _available_ram():
        return "ram"
    return "h5"


def padded_targets(
    offsets: np.ndarray, labels: np.ndarray, scores: np.ndarray, *, pad_label: int
) -> tuple[np.ndarray, np.ndarray]:
    """CSR soft-score targets as a [Q, L] label table and a [Q, L] score table.

    L is the most answers any question has (at most 10: one per annotator). Padding slots
    point at `pad_label`, an extra column that is dropped after the scatter.
    """
    from butd.data.official import gather_rows

    table_labels, table_scores = gather_rows(offsets, labels, scores, np.arange(len(offsets) - 1))
    table_labels[table_labels < 0] = pad_label
    return table_labels, table_scores


class TensorSplit:
    """One split held in tensors on `device`; `split.batch(idx)` is a whole batch.

    idx: LongTensor [batch] of question indices, on the same device.
    Build it from a cache file with `TensorSplit.load(path, ...)`.
    """

    def __init__(
        self,
        *,
        features: np.ndarray,
        spatial: np.ndarray,
        question_id: np.ndarray,
        image_index: np.ndarray,
        tokens: np.ndarray,
        targets: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
        num_answers: int,
        official: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        """features: [N, K, D] float16; spatial: [N, K, 6]; question_id, image_index: [Q];
        tokens: [Q, T]; targets: CSR (offsets [Q+1], labels [nnz], scores [nnz]) or None;
        official: the official-accuracy table as (acc_labels [Q, M] with -1 pads,
        acc_values [Q, M], answer_type codes [Q]) or None."""
        self.num_answers = num_answers
        self.device = torch.device(device)
        pin = self.device.type == "cpu" and torch.cuda.is_available()
        if self.device.type == "cpu":
            reuse_freed_memory()

        def put(array: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(array))
            return t.pin_memory() if pin else t.to(self.device)

        self.features = put(features)
        self.spatial = put(spatial)
        self.question_id = put(question_id)
        self.image_index = put(image_index.astype(np.int64))
        self.tokens = put(tokens.astype(np.int64))
        self.has_targets = targets is not None
        if targets is not None:
            labels, scores = padded_targets(*targets, pad_label=num_answers)
            self.target_labels, self.target_scores = put(labels), put(scores)
        self.has_official = official is not None
        if official is not None:
            self.acc_labels, self.acc_values, self.answer_type = (put(a) for a in official)

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        num_answers: int,
        use_boxes: int | None = None,
        device: torch.device | str = "cpu",
    ) -> TensorSplit:
        """Read a prepared `{split}.h5` whole (only the first `use_boxes` boxes, if set)."""
        from butd.data.official import answer_type_codes, gather_rows

        boxes = slice(None, use_boxes)
        with h5py.File(path, "r") as f:
            q = f["questions"]
            targets = official = None
            if f.attrs["has_targets"]:
                targets = (f["targets/offsets"][:], f["targets/labels"][:], f["targets/scores"][:])
                acc = (f["vqa_acc/offsets"][:], f["vqa_acc/labels"][:], f["vqa_acc/scores"][:])
                acc_labels, acc_values = gather_rows(*acc, np.arange(len(q["question_id"])))
                official = (acc_labels, acc_values, answer_type_codes(q["answer_type"].asstr()[:]))
            return cls(
                features=f["images/features"][:, boxes],
                spatial=f["images/spatial"][:, boxes],
                question_id=q["question_id"][:],
                image_index=q["image_index"][:],
                tokens=q["tokens"][:],
                targets=targets,
                num_answers=num_answers,
                official=official,
                device=device,
            )

    def __len__(self) -> int:
        return len(self.question_id)

    @property
    def nbytes(self) -> int:
        tensors = [v for v in vars(self).values() if isinstance(v, torch.Tensor)]
        return sum(t.numel() * t.element_size() for t in tensors)

    def __getitem__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """The batch of questions `indices`, as `VQABatches` gives it."""
        return self.batch(torch.as_tensor(indices, dtype=torch.long, device=self.image_index.device))

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        rows = self.image_index[idx]
        out = {
            "v": self.features[rows].float(),  # [batch, K, D]
            "b": self.spatial[rows],
            "q": self.tokens[idx],
            "question_id": self.question_id[idx],
        }
        if self.has_targets:
            dense = torch.zeros(len(idx), self.num_answers + 1, device=idx.device)
            dense.scatter_(1, self.target_labels[idx], self.target_scores[idx])
            out["target"] = dense[:, : self.num_answers]
        if self.has_official:
            out["acc_labels"] = self.acc_labels[idx]
            out["acc_values"] = self.acc_values[idx]
            out["answer_type"] = self.answer_type[idx]
        return out


class TensorBatchLoader:
    """Iterates a `TensorSplit` in the batches its sampler draws; Lightning accepts it as a loader.

    The sampler (`EpochBatchSampler`) makes the order a function of seed and epoch and shares
    the questions out over processes; Lightning calls `loader.sampler.set_epoch` each epoch.
    """

    #: the sampler already yields batches; Lightning inspects these like a DataLoader's
    batch_sampler = None

    def __init__(self, split: TensorSplit, sampler: Sampler[list[int]]) -> None:
        self.split = split
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        device = self.split.image_index.device
        for indices in self.sampler:
            yield self.split.batch(torch.as_tensor(indices, dtype=torch.long).to(device, non_blocking=True))
