"""The training order: a function of (seed, epoch), resumable inside an epoch."""

import numpy as np

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
