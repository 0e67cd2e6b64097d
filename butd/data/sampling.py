"""The order of batches: a function of the seed and the epoch alone, shared out over processes.

`RandomSampler` draws its permutation from the global torch RNG, so the order of an epoch
depends on every random draw made before it (initialisation, dropout, a resume that skips
them). Here each epoch's permutation comes from its own generator seeded with
`(seed, epoch)`, so a resumed run sees the same batches as an uninterrupted one, and the
position inside an interrupted epoch can be restored by skipping the batches already done.

Under several processes (DDP) the questions are sharded rather than the batches, which
Lightning's own distributed sampler would do (each batch is one item to it):

- training: one permutation per epoch, the same on every process, padded by repeating its
  head to a multiple of the process count and dealt out round-robin, so every process gets
  the same number of batches (DDP hangs otherwise);
- validation: no shuffle and no padding, every question exactly once over all processes; the
  scores are torchmetrics sums, so the synced `val/score` is the one a single process computes.

It subclasses `DistributedSampler` so that Lightning leaves it alone rather than wrapping it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from torch.utils.data import DistributedSampler


class EpochBatchSampler(DistributedSampler):
    """Yields lists of at most `batch_size` question indices of this process's share.

    Lightning calls `set_epoch` at the start of every epoch; `resume_at` is called once
    when a checkpoint is restored and skips the batches that epoch had already trained on.
    """

    def __init__(
        self,
        num_items: int,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if num_items <= 0 or batch_size <= 0:
            raise ValueError(f"num_items={num_items} and batch_size={batch_size} must be positive")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside 0..{num_replicas - 1}")
        # DistributedSampler's __init__ would need a dataset and a process group; these are
        # the attributes it keeps.
        self.dataset = None
        self.num_items = num_items
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = False
        self._pending_skip: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, *, epoch: int, batches_done: int) -> None:
        """The next iteration of `epoch` starts after its first `batches_done` batches."""
        self.epoch = epoch
        self._pending_skip = (epoch, batches_done)

    def order(self, epoch: int) -> np.ndarray:
        """This process's question indices of `epoch`, in the order they are batched."""
        if not self.shuffle:
            return np.arange(self.num_items)[self.rank :: self.num_replicas]
        order = np.random.default_rng([self.seed, epoch]).permutation(self.num_items)
        padded = -(-self.num_items // self.num_replicas) * self.num_replicas
        if padded > self.num_items:
            order = np.resize(order, padded)  # repeats the head
        return order[self.rank :: self.num_replicas]

    def num_indices(self) -> int:
        """Length of `order()`, without drawing the permutation."""
        if self.shuffle:
            return -(-self.num_items // self.num_replicas)
        return len(range(self.rank, self.num_items, self.num_replicas))

    def __len__(self) -> int:
        return math.ceil(self.num_indices() / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self.epoch
        skip = 0
        if self._pending_skip is not None and self._pending_skip[0] == epoch:
            skip = self._pending_skip[1]
        self._pending_skip = None
        order = self.order(epoch)
        for start in range(skip * self.batch_size, len(order), self.batch_size):
            yield order[start : start + self.batch_size].tolist()

    def position(self, *, batches_done: int, batches_per_epoch: float) -> dict[str, int]:
        """Where the next run should start, given how many batches of this epoch are done."""
        if batches_done >= batches_per_epoch:
            return {"epoch": self.epoch + 1, "batches_done": 0}
        return {"epoch": self.epoch, "batches_done": batches_done}
