"""The batch record travels as Lightning and torch move batches: to a device, through a loader."""

from dataclasses import fields

import torch
from lightning_fabric.utilities.apply_func import move_data_to_device
from torch.utils.data import DataLoader

from butd.data.batch import VQABatch


def _batch() -> VQABatch:
    g = torch.Generator().manual_seed(0)
    return VQABatch(
        v=torch.rand(3, 4, 5, generator=g).half(),
        b=torch.rand(3, 4, 6, generator=g),
        q=torch.randint(0, 9, (3, 7), generator=g),
        question_id=torch.tensor([4, 5, 6]),
        target=torch.rand(3, 2, generator=g),
    )


def test_lightning_moves_the_record_whole_and_keeps_what_is_absent():
    batch = _batch()
    moved = move_data_to_device(batch, torch.device("cpu"))  # what the strategy calls every step
    assert isinstance(moved, VQABatch) and len(moved) == 3
    for field in fields(VQABatch):
        x, y = getattr(batch, field.name), getattr(moved, field.name)
        assert (x is None and y is None) or (torch.equal(x, y) and x.dtype == y.dtype), field.name
    assert moved.v_mask is None and moved.qtype is None and not moved.has_official


def test_a_loader_of_whole_batches_yields_the_record():
    batches = [_batch(), _batch()]
    out = list(DataLoader(batches, batch_size=None))
    assert all(isinstance(b, VQABatch) for b in out)
    assert torch.equal(out[1].target, batches[1].target)
