"""Sharding batches of questions over the processes of a DDP run."""

import pytest

from butd.data.sampling import ShardedBatchSampler


def shards(
    n: int, world: int, *, shuffle: bool, epoch: int = 0, batch_size: int = 4
) -> list[list[list[int]]]:
    samplers = [
        ShardedBatchSampler(n, batch_size=batch_size, num_replicas=world, rank=r, shuffle=shuffle, seed=7)
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
