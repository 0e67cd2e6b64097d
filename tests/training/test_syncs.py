"""Host synchronisations in a real fit, counted on a CPU.

On a CPU nothing blocks, so the calls that would block on CUDA are recorded as they are made, by a
`TorchFunctionMode` switched on from the start of each training or validation batch to the start of
the next (the step, its hooks, logging and the progress bar all fall inside), and off at epoch ends.
"""

from __future__ import annotations

import sys
from collections import Counter

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch.overrides import TorchFunctionMode

from butd.train import build
from butd.training.validate import validate_train_config

#: Tensor methods that wait for the device (or copy to the host) on CUDA
BLOCKING = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.cpu,
    torch.Tensor.numpy,
    torch.Tensor.__bool__,
    torch.Tensor.__float__,
    torch.Tensor.__int__,
    torch.Tensor.__index__,
    torch.Tensor.nonzero,
    torch.nonzero,
    torch.Tensor.any,  # only when read: counted through __bool__; kept out below
}
BLOCKING.discard(torch.Tensor.any)
#: tensors built from Python data: a host-to-device copy, blocking from pageable memory
FROM_PYTHON = {torch.tensor, torch.as_tensor}


def _blocking(func, args) -> str | None:
    if func in BLOCKING:
        return getattr(func, "__name__", str(func))
    if func in FROM_PYTHON and args and not isinstance(args[0], torch.Tensor):
        return f"{func.__name__}(python data)"
    if func is torch.Tensor.__getitem__ and len(args) > 1:
        index = args[1] if isinstance(args[1], tuple) else (args[1],)
        if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index):
            return "boolean-mask indexing"
    return None


class SyncCounter(TorchFunctionMode):
    """Counts blocking calls by (stage, training batches done) while it is on."""

    def __init__(self) -> None:
        super().__init__()
        self.where: tuple[str, int] = ("", 0)
        self.calls: Counter[tuple[str, int]] = Counter()
        self.names: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = _blocking(func, args)
        if name is not None:
            caller = _caller()
            if _in_input_path(caller):
                self.names[f"{name} (input path or optimizer counters, not counted)"] += 1
            else:
                self.calls[self.where] += 1
                self.names[f"{name} at {caller} {self.where}"] += 1
        return func(*args, **(kwargs or {}))


def _caller() -> str:
    """The file and line that made the call (frames of torch's dispatch and of this test skipped)."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.endswith(("torch/overrides.py", "torch/_tensor.py", "test_syncs.py")):
            return f"{name}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


def _in_input_path(caller: str) -> bool:
    """Batches are assembled ahead of the step that uses them (Lightning fetches one ahead), and
    torch's optimizers keep their step counters on the host unless `capturable`: neither waits."""
    return any(part in caller for part in ("butd/data/", "torch/utils/data/", "torch/optim/"))


class CountSyncs(pl.Callback):
    """Switches a `SyncCounter` on from each batch start to the next, off at each epoch end."""

    def __init__(self) -> None:
        self.counter = SyncCounter()
        self.on = False
        self.steps = Counter()

    def _start(self, stage: str, trainer: pl.Trainer) -> None:
        # training batches done so far: the global step, except under debias.mode=iter (two per batch)
        self.counter.where = (stage, self.steps["train"])
        self.steps[stage] += 1
        if not self.on:
            self.counter.__enter__()
            self.on = True

    def _stop(self) -> None:
        if self.on:
            self.counter.__exit__(None, None, None)
            self.on = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start("train", trainer)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self._start("val", trainer)

    def on_train_epoch_end(self, trainer, pl_module):
        self._stop()

    def on_validation_epoch_end(self, trainer, pl_module):
        self._stop()

    def on_validation_epoch_start(self, trainer, pl_module):
        self._stop()

    def on_fit_end(self, trainer, pl_module):
        self._stop()


def _fit(cfg) -> CountSyncs:
    module, datamodule = build(validate_train_config(cfg))
    counter = CountSyncs()
    callbacks = [instantiate(v) for v in cfg.callbacks.values() if v and "_target_" in v]
    clip = module.take_gradient_clip(cfg.trainer)
    trainer = instantiate(cfg.trainer, callbacks=[*callbacks, counter], logger=False, **clip)
    try:
        trainer.fit(module, datamodule=datamodule)
    finally:
        counter._stop()
    return counter


@pytest.mark.slow
@pytest.mark.parametrize("method", [[], ["debias=gge_dq_iter"]], ids=["plain", "gge_dq_iter"])
def test_training_and_validation_steps_do_not_wait_for_the_device(tiny_cfg, method):
    """5 epochs of 10 steps, logging every 4: a training step reads the device only where Lightning
    writes logs or the bar refreshes (every 4 steps, each epoch's last step), a validation batch
    only as the first of its epoch (Lightning's bar reading its logged values), a few reads each.
    The same with debias.mode=iter's two optimizer steps per batch."""
    every, per_epoch = 4, 10
    cfg = tiny_cfg(
        ["model.num_hid=32", "trainer.max_epochs=5", f"trainer.log_every_n_steps={every}", *method]
    )
    counter = _fit(cfg)
    calls, names = counter.counter.calls, counter.counter.names
    assert counter.steps["train"] == 50 and counter.steps["val"] == 20
    allowed = {
        s
        for s in range(50)
        if (s + 1) % every == 0 or (s % per_epoch + 1) % every == 0 or (s + 1) % per_epoch == 0
    }
    stray = {key: n for key, n in calls.items() if key[0] == "train" and key[1] not in allowed}
    assert not stray, (stray, names)
    val = {key: n for key, n in calls.items() if key[0] == "val"}
    assert set(val) <= {("val", e * per_epoch) for e in range(1, 6)}, (val, names)
    assert max(calls.values(), default=0) <= 3, (dict(calls), names)
    # in all, at most one read per 4 steps (the base code made 7.3 per step and 3.5 per val batch)
    assert sum(calls.values()) <= 3 + 50 / every + 5 + 2 * 5, (dict(calls), names)
