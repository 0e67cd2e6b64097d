"""The training order: a function of (seed, epoch), resumable inside an epoch."""

import numpy as np
import pytest

from butd.data.sampling import EpochBatchSampler


def _epoch(sampler: EpochBatchSampler, epoch: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_each_epoch_is_a_permutation_fixed_by_seed_and_epoch():
    a = EpochBatchSampler(23, batch_size=5, shuffle=True, seed=7)
    b = EpochBatchSampler(23, batch_size=5, shuffle=True, seed=7)
    first = _epoch(a, 0)
    assert len(first) == len(a) == 5 and [len(x) for x in first] == [5, 5, 5, 5, 3]
    assert sorted(i for batch in first for i in batch) == list(range(23))
    # another sampler, epochs visited in another order: the same batches per epoch
    assert _epoch(b, 3) == _epoch(a, 3) and _epoch(b, 0) == first
    assert _epoch(a, 1) != first
    assert _epoch(EpochBatchSampler(23, batch_size=5, shuffle=True, seed=8), 0) != first


def test_validation_order_is_sequential():
    s = EpochBatchSampler(7, batch_size=3, shuffle=False)
    assert _epoch(s, 4) == [[0, 1, 2], [3, 4, 5], [6]]


def test_resume_skips_the_batches_done_once():
    s = EpochBatchSampler(40, batch_size=6, shuffle=True, seed=1)
    full = _epoch(s, 2)
    resumed = EpochBatchSampler(40, batch_size=6, shuffle=True, seed=1)
    resumed.resume_at(epoch=2, batches_done=3)
    assert list(resumed) == full[3:]
    assert list(resumed) == full  # the skip applies to the interrupted epoch only
    # a resume position for an epoch that Lightning does not restart is dropped
    other = EpochBatchSampler(40, batch_size=6, shuffle=True, seed=1)
    other.resume_at(epoch=2, batches_done=3)
    assert _epoch(other, 3) == _epoch(s, 3)


def test_position_moves_to_the_next_epoch_when_one_is_complete():
    s = EpochBatchSampler(40, batch_size=6, shuffle=True)
    s.set_epoch(4)
    assert s.position(batches_done=2, batches_per_epoch=7) == {"epoch": 4, "batches_done": 2}
    assert s.position(batches_done=7, batches_per_epoch=7) == {"epoch": 5, "batches_done": 0}
    # limit_train_batches: an epoch may end before the sampler does
    assert s.position(batches_done=3, batches_per_epoch=3) == {"epoch": 5, "batches_done": 0}
    assert np.array_equal(np.sort(s.order(4)), np.arange(40))


# Sharding batches of questions over the processes of a DDP run.


def shards(
    n: int, world: int, *, shuffle: bool, epoch: int = 0, batch_size: int = 4
) -> list[list[list[int]]]:
    samplers = [
        EpochBatchSampler(n, batch_size=batch_size, num_replicas=world, rank=r, shuffle=shuffle, seed=7)
        for r in range(world)
    ]
    for s in samplers:
        s.set_epoch(epoch)
    out = [list(s) for s in samplers]
    assert [len(b) for b in out] == [len(s) for s in samplers]
    assert all(len(batch) <= batch_size for b in out for batch in b)
    return out


@pytest.mark.parametrize("n", [1, 5, 64, 65, 67])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_validation_sees_every_question_exactly_once(n, world):
    flat = [i for b in shards(n, world, shuffle=False) for batch in b for i in batch]
    assert sorted(flat) == list(range(n))


@pytest.mark.parametrize("n", [1, 5, 64, 67])
@pytest.mark.parametrize("world", [2, 3])
def test_training_gives_every_process_as_many_batches_and_covers_all(n, world):
    parts = shards(n, world, shuffle=True)
    assert len({len(p) for p in parts}) == 1  # DDP hangs when one process has a batch fewer
    flat = [i for p in parts for batch in p for i in batch]
    assert set(flat) == set(range(n))
    assert len(flat) - n < world  # padding repeats fewer questions than there are processes


def test_training_order_is_shared_by_processes_and_changes_with_the_epoch():
    first, again, other = (shards(64, 2, shuffle=True, epoch=e) for e in (3, 3, 4))
    assert first == again
    assert first != other
    # the two processes deal from one permutation: their shares are disjoint
    assert not {i for b in first[0] for i in b} & {i for b in first[1] for i in b}
