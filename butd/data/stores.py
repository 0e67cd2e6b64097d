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
from butd.data.batch import QuestionTables, VQABatch, read_features
from butd.memory import reuse_freed_memory


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
    """One split (or several concatenated) held in tensors on `device`; `split.batch(idx)` is its
    `VQABatch` of questions idx (LongTensor [batch], on the same device). Build it from cache
    files with `TensorSplit.load(paths, ...)`.

    The features are one row per box (float16 [B, D]) with each image's first row and count,
    so images with 10-100 boxes take only the memory of their boxes. A batch pads to its
    largest image and adds `v_mask`; with the same count everywhere (36 boxes) the rows are
    viewed as [N, K, D] and gathered whole, with no mask. The question side is `questions`
    (`butd.data.batch.QuestionTables`), as `VQABatches` has it.
    """

    def __init__(
        self,
        *,
        features: np.ndarray,
        spatial: np.ndarray,
        box_offsets: np.ndarray,
        image_index: np.ndarray,
        questions: QuestionTables,
    ) -> None:
        """features: float16 [B, D], one row per box; spatial: [B, 6] likewise; box_offsets: each
        image's first row, int64 [N+1]; image_index: each question's image, [Q]; questions: the
        question side, on the device the split lives on (pinned host memory for a host store on
        a GPU machine)."""
        self.questions = questions
        self.device = questions.device
        #: batches are gathered into pinned host memory, so the copy to the GPU is asynchronous
        self.pinned = questions.pinned
        put = questions.put
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
        self.image_index = put(self._image_index)
        self.has_targets = questions.has_targets

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

        device = torch.device(device)
        if device.type == "cpu":
            reuse_freed_memory()
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
        pinned = device.type == "cpu" and torch.cuda.is_available()
        questions = QuestionTables(t, num_answers=num_answers, targets=targets, device=device, pinned=pinned)
        return cls(
            features=read_features(features, normalize_features),
            spatial=spatial,
            box_offsets=box_offsets,
            image_index=t.image_index,
            questions=questions,
        )

    def __len__(self) -> int:
        return len(self.questions)

    @property
    def nbytes(self) -> int:
        tensors = [v for o in (self, self.questions) for v in vars(o).values() if isinstance(v, torch.Tensor)]
        return sum(t.numel() * t.element_size() for t in tensors)

    def width(self, indices: Sequence[int] | np.ndarray) -> int:
        """Boxes per image in the batch of questions `indices` (host arithmetic only)."""
        if self.fixed:
            return self.max_boxes
        return int(self._counts[self._image_index[np.asarray(indices, np.int64)]].max(initial=1))

    def __getitem__(self, indices: list[int]) -> VQABatch:
        """The batch of questions `indices`, as `VQABatches` gives it."""
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.image_index.device)
        return self.batch(idx, width=self.width(indices))

    def batch(self, idx: torch.Tensor, *, width: int | None = None) -> VQABatch:
        """The batch of questions `idx`; `width` (from `self.width`) saves a device sync."""
        rows = self.image_index[idx]
        take = self.questions.take
        if self.fixed:
            k = self.max_boxes
            # float16 as stored: the model's first layer casts to its compute dtype
            v = take(self.features.view(-1, k, self.features.shape[1]), rows)  # [batch, K, D]
            b = take(self.spatial.view(-1, k, 6), rows)
            v_mask = None
        else:
            k = width if width is not None else int(self.box_count[rows].max())
            slots = torch.arange(k, device=idx.device)
            v_mask = slots < self.box_count[rows, None]  # [batch, k]
            pos = torch.where(v_mask, self.box_start[rows, None] + slots, 0)
            pad = ~v_mask[..., None]
            v = take(self.features, pos).masked_fill_(pad, 0)
            b = take(self.spatial, pos).masked_fill_(pad, 0)
        return self.questions.batch(idx, v=v, b=b, v_mask=v_mask)


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

    def __iter__(self) -> Iterator[VQABatch]:
        device = self.split.image_index.device
        pin = device.type == "cuda"  # a pinned index makes its copy to the GPU asynchronous
        for indices in self.sampler:
            idx = torch.as_tensor(indices, dtype=torch.long)
            idx = (idx.pin_memory() if pin else idx).to(device, non_blocking=True)
            yield self.split.batch(idx, width=self.split.width(indices))
