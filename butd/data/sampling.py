"""Batches of question indices for one process of a multi-process (DDP) run.

The loaders yield whole batches (see `VQABatches`). Lightning's own distributed sampler
would treat each batch as one item and pad the list of batches by repeating some, so a
validation pass would count some questions twice. This sampler shards the questions instead:

- training: one permutation per epoch, the same on every process (seed + epoch), padded by
  repeating its head to a multiple of the process count, then dealt out round-robin, so every
  process gets the same number of batches (DDP needs that) and each question is seen once or
  (the padding) twice per epoch;
- validation: no shuffle and no padding, every question exactly once over all processes; the
  scores are torchmetrics sums, so the synced `val/score` is the one a single process computes.

It subclasses `DistributedSampler` so that Lightning leaves it alone rather than wrapping it.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DistributedSampler


class ShardedBatchSampler(DistributedSampler):
    """Yields lists of at most `batch_size` indices of this process's share of `num_items`."""

    def __init__(
        self,
        num_items: int,
        *,
        batch_size: int,
        num_replicas: int,
        rank: int,
        shuffle: bool,
        seed: int = 0,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside 0..{num_replicas - 1}")
        # DistributedSampler's __init__ would need the dataset and an initialised process
        # group; these are all the attributes it keeps.
        self.dataset = None
        self.num_items = num_items
        self.batch_size = batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.drop_last = False

    def indices(self) -> torch.Tensor:
        """This process's question indices for the current epoch, in visiting order."""
        if not self.shuffle:
            return torch.arange(self.num_items)[self.rank :: self.num_replicas]
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_items, generator=g)
        padded = -(-self.num_items // self.num_replicas) * self.num_replicas
        if padded > self.num_items:
            order = order.repeat(-(-padded // self.num_items))[:padded]
        return order[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        indices = self.indices()
        if len(indices):
            yield from (batch.tolist() for batch in indices.split(self.batch_size))

    def num_indices(self) -> int:
        """Length of `indices()`, without drawing the permutation."""
        if self.shuffle:
            return -(-self.num_items // self.num_replicas)
        return max(0, -(-(self.num_items - self.rank) // self.num_replicas))

    def __len__(self) -> int:
        return -(-self.num_indices() // self.batch_size)
