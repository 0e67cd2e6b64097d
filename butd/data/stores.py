"""Tensor-resident splits: batches gathered by index where the model runs.

The HDF5 path (`VQABatches`) reads features per batch from disk. Here a whole split lives in
tensors, on the GPU (`feature_store=gpu`) or in host memory (`ram`, pinned when a GPU is
present): features in float16, tokens, image rows and the targets as a fixed-width padded
table. A batch is a handful of index operations, with no per-question Python and no host
synchronisation, so the GPU is never waiting on the input path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Sampler

from butd.config.data import FEATURE_STORES  # noqa: F401  (the values this module serves)
from butd.data.transforms import binary_scores, l2_normalize
from butd.memory import reuse_freed_memory
from butd.vqa.csr import gather_rows, padded_targets


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
    """Bytes a split's features take once loaded (float16, as stored): its own boxes only, where
    the file views a larger set (a linked cache, GQA's object files: `images/box_start`)."""
    with h5py.File(path, "r") as f:
        images = f["images"]
        ds = images["features"]
        if "box_start" not in images:
            return int(np.prod(ds.shape)) * ds.dtype.itemsize
        return int(images["counts"][:].sum()) * int(ds.shape[1]) * 2


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


class TensorSplit:
    """One split (or several concatenated) held in tensors on `device`; `split.batch(idx)` is a batch.

    idx: LongTensor [batch] of question indices, on the same device.
    Build it from cache files with `TensorSplit.load(paths, ...)`.

    The features are one row per box (float16 [B, D]) with each image's first row and count,
    so images with 10-100 boxes take only the memory of their boxes. A batch pads to its
    largest image and adds `v_mask`; with the same count everywhere (36 boxes) the rows are
    viewed as [N, K, D] and gathered whole, with no mask.
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
        box_offsets: np.ndarray | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        """features: float16 [N, K, D], or [B, D] one row per box with `box_offsets` [N+1];
        spatial: [N, K, 6] or [B, 6] likewise; question_id, image_index: [Q]; tokens: [Q, T];
        targets: CSR (offsets [Q+1], labels [nnz], scores [nnz]) or None;
        official: the official-accuracy table as (acc_labels [Q, M] with -1 pads,
        acc_values [Q, M], answer_type codes [Q]) or None."""
        self.num_answers = num_answers
        self.device = torch.device(device)
        pin = self.device.type == "cpu" and torch.cuda.is_available()
        #: batches are gathered into pinned host memory, so the copy to the GPU is asynchronous
        self.pinned = pin
        if self.device.type == "cpu":
            reuse_freed_memory()

        def put(array: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(array))
            return t.pin_memory() if pin else t.to(self.device)

        if box_offsets is None:
            n, k = features.shape[:2]
            box_offsets = np.arange(n + 1, dtype=np.int64) * k
            features, spatial = features.reshape(n * k, -1), spatial.reshape(n * k, -1)
        counts = np.diff(box_offsets)
        #: host copies: the padded width of a batch is known without a device round trip
        self._counts = counts
        self._image_index = np.asarray(image_index, np.int64)
        self.max_boxes = int(counts.max(initial=0))
        self.fixed = bool((counts == self.max_boxes).all())
        self.features = put(features)
        self.spatial = put(spatial)
        self.box_start = put(box_offsets[:-1].astype(np.int64))
        self.box_count = put(counts.astype(np.int64))
        self.question_id = put(question_id)
        self.image_index = put(self._image_index)
        self.tokens = put(tokens.astype(np.int64))
        self.has_targets = targets is not None
        if targets is not None:
            labels, scores = padded_targets(*targets, pad_label=num_answers)
            self.target_labels, self.target_scores = put(labels), put(scores)
        self.has_official = official is not None
        if official is not None:
            self.acc_labels, self.acc_values, self.answer_type = (put(a) for a in official)
        #: question-type codes (`set_question_types`), for the debias methods' prior
        self.qtype: torch.Tensor | None = None
        self.question_type: np.ndarray | None = None

    def set_question_types(self, codes: np.ndarray) -> None:
        """Each question's row of the question-type prior; batches then carry it as `qtype`."""
        self.qtype = torch.from_numpy(codes.astype(np.int64)).to(self.device)

    @classmethod
    def load(
        cls,
        paths: Path | Sequence[Path],
        *,
        num_answers: int,
        use_boxes: int | None = None,
        device: torch.device | str = "cpu",
        targets: str = "soft",
        normalize_features: str = "none",
    ) -> TensorSplit:
        """Read prepared `{split}.h5` files whole (only each image's first `use_boxes` boxes, if set);
        `targets`, `normalize_features`: `data.targets`, `data.normalize_features`, applied once here."""
        from butd.data.splits import SplitTables

        paths = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
        t = SplitTables.load(paths)
        counts = t.counts(use_boxes)
        box_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        features = np.empty((int(box_offsets[-1]), t.feature_dim), np.float16)
        spatial = np.empty((int(box_offsets[-1]), 6), np.float32)
        for i, path in enumerate(paths):
            mine = np.flatnonzero(t.image_file == i)
            with h5py.File(path, "r") as f:
                _read_boxes(
                    f["images/features"], features, t.box_start[mine], counts[mine], box_offsets[mine]
                )
                _read_boxes(f["images/spatial"], spatial, t.box_start[mine], counts[mine], box_offsets[mine])
        if normalize_features == "l2":
            l2_normalize(features)
        soft = t.targets
        if soft is not None and targets == "binary":
            soft = (soft[0], soft[1], binary_scores(soft[0], soft[2]))
        official = None
        if t.has_targets:
            acc_labels, acc_values = gather_rows(*t.accuracy, np.arange(len(t.question_id)))
            official = (acc_labels, acc_values, t.answer_type)
        split = cls(
            features=features,
            spatial=spatial,
            box_offsets=box_offsets,
            question_id=t.question_id,
            image_index=t.image_index,
            tokens=t.tokens,
            targets=soft,
            num_answers=num_answers,
            official=official,
            device=device,
        )
        split.question_type = t.question_type
        return split

    def __len__(self) -> int:
        return len(self.question_id)

    @property
    def nbytes(self) -> int:
        tensors = [v for v in vars(self).values() if isinstance(v, torch.Tensor)]
        return sum(t.numel() * t.element_size() for t in tensors)

    def width(self, indices: Sequence[int] | np.ndarray) -> int:
        """Boxes per image in the batch of questions `indices` (host arithmetic only)."""
        if self.fixed:
            return self.max_boxes
        return int(self._counts[self._image_index[np.asarray(indices, np.int64)]].max(initial=1))

    def __getitem__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """The batch of questions `indices`, as `VQABatches` gives it."""
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.image_index.device)
        return self.batch(idx, width=self.width(indices))

    def batch(self, idx: torch.Tensor, *, width: int | None = None) -> dict[str, torch.Tensor]:
        """The batch of questions `idx`; `width` (from `self.width`) saves a device sync."""
        rows = self.image_index[idx]
        take = self._take
        out: dict[str, torch.Tensor] = {}
        if self.fixed:
            k = self.max_boxes
            # float16 as stored: the model's first layer casts to its compute dtype
            out["v"] = take(self.features.view(-1, k, self.features.shape[1]), rows)  # [batch, K, D]
            out["b"] = take(self.spatial.view(-1, k, 6), rows)
        else:
            k = width if width is not None else int(self.box_count[rows].max())
            slots = torch.arange(k, device=idx.device)
            valid = slots < self.box_count[rows, None]  # [batch, k]
            pos = torch.where(valid, self.box_start[rows, None] + slots, 0)
            pad = ~valid[..., None]
            out["v"] = take(self.features, pos).masked_fill_(pad, 0)
            out["b"] = take(self.spatial, pos).masked_fill_(pad, 0)
            out["v_mask"] = valid
        out["q"] = take(self.tokens, idx)
        out["question_id"] = self.question_id[idx]
        if self.has_targets:
            dense = torch.zeros(len(idx), self.num_answers + 1, device=idx.device, pin_memory=self.pinned)
            dense.scatter_(1, self.target_labels[idx], self.target_scores[idx])
            out["target"] = dense[:, : self.num_answers]
        if self.qtype is not None:
            out["qtype"] = self.qtype[idx]
        if self.has_official:
            out["acc_labels"] = self.acc_labels[idx]
            out["acc_values"] = self.acc_values[idx]
            out["answer_type"] = self.answer_type[idx]
        return out

    def _take(self, source: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """`source[index]` (rows of the first dimension, any index shape), gathered into pinned
        memory for a host store on a GPU machine, so that Lightning's `non_blocking` copy to the
        GPU is truly asynchronous (torch's caching host allocator recycles the buffers)."""
        rest = source.shape[1:]
        out = torch.empty(
            (*index.shape, *rest), dtype=source.dtype, device=source.device, pin_memory=self.pinned
        )
        torch.index_select(source, 0, index.reshape(-1), out=out.view(-1, *rest))
        return out


def _read_boxes(
    source: h5py.Dataset, out: np.ndarray, starts: np.ndarray, counts: np.ndarray, dest: np.ndarray
) -> None:
    """Copy each image's first `counts` box rows from `source` to `out[dest:dest+counts]`.

    `starts` are every image of `source`, in order (each image's boxes end where the next
    begins). Reads blocks of consecutive images at once; where every box is kept (no
    `use_boxes`) a block goes straight into place, otherwise through a buffer of one block.
    """
    block = 2048
    stored_end = np.concatenate([starts[1:], [source.shape[0]]]) if len(starts) else starts
    for a in range(0, len(starts), block):
        b = min(a + block, len(starts))
        lo, hi = int(starts[a]), int(stored_end[b - 1])
        if int(counts[a:b].sum()) == hi - lo:  # contiguous: every box of these images is kept
            source.read_direct(out, np.s_[lo:hi], np.s_[int(dest[a]) : int(dest[a]) + hi - lo])
            continue
        kept = int(counts[a:b].sum())
        if hi - lo > 4 * kept:  # sparse (GQA's split images among all object rows): image by image
            at = int(dest[a])
            for s, c in zip(starts[a:b].tolist(), counts[a:b].tolist(), strict=True):
                source.read_direct(out, np.s_[s : s + c], np.s_[at : at + c])
                at += c
            continue
        buf = source[lo:hi]
        keep = np.zeros(hi - lo, bool)
        for s, c in zip((starts[a:b] - lo).tolist(), counts[a:b].tolist(), strict=True):
            keep[s : s + c] = True
        out[int(dest[a]) : int(dest[a]) + int(counts[a:b].sum())] = buf[keep]


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
        pin = device.type == "cuda"  # a pinned index makes its copy to the GPU asynchronous
        for indices in self.sampler:
            idx = torch.as_tensor(indices, dtype=torch.long)
            idx = (idx.pin_memory() if pin else idx).to(device, non_blocking=True)
            yield self.split.batch(idx, width=self.split.width(indices))
