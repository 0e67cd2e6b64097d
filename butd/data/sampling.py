"""The order of training batches: a function of the seed and the epoch alone.

`RandomSampler` draws its permutation from the global torch RNG, so the order of an epoch
depends on every random draw made before it (initialisation, dropout, a resume that skips
them). Here each epoch's permutation comes from its own generator seeded with
`(seed, epoch)`, so a resumed run sees the same batches as an uninterrupted one, and the
position inside an interrupted epoch can be restored by skipping the batches already done.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class EpochBatchSampler(Sampler[list[int]]):
    """Yields lists of `batch_size` item indices (the last one may be shorter).

    Lightning calls `set_epoch` at the start of every epoch; `resume_at` is called once
    when a checkpoint is restored and skips the batches that epoch had already trained on.
    """

    def __init__(self, num_items: int, *, batch_size: int, shuffle: bool, seed: int = 0) -> None:
        if num_items <= 0 or batch_size <= 0:
            raise ValueError(f"num_items={num_items} and batch_size={batch_size} must be positive")
        self.num_items = num_items
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self._pending_skip: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, *, epoch: int, batches_done: int) -> None:
        """The next iteration of `epoch` starts after its first `batches_done` batches."""
        self.epoch = epoch
        self._pending_skip = (epoch, batches_done)

    def order(self, epoch: int) -> np.ndarray:
        """Item indices of `epoch` in the order they are batched."""
        if not self.shuffle:
            return np.arange(self.num_items)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_items)

    def __len__(self) -> int:
        return math.ceil(self.num_items / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self.epoch
        skip = 0
        if self._pending_skip is not None and self._pending_skip[0] == epoch:
            skip = self._pending_skip[1]
        self._pending_skip = None
        order = self.order(epoch)
        for start in range(skip * self.batch_size, self.num_items, self.batch_size):
            yield order[start : start + self.batch_size].tolist()

    def position(self, *, batches_done: int, batches_per_epoch: float) -> dict[str, int]:
        """Where the next run should start, given how many batches of this epoch are done."""
        if batches_done >= batches_per_epoch:
            return {"epoch": self.epoch + 1, "batches_done": 0}
        return {"epoch": self.epoch, "batches_done": batches_done}
