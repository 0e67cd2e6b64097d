"""Faults injected into real runs at a precise stage: a callback that sends its own process a real
signal, for the tests of what a signal does at each stage (fit, validation, test).

Add it to a `butd.train` command line:
`+callbacks.fault._target_=tests.training.faults.SignalAt +callbacks.fault.hook=validation_batch_end`.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl


class SignalAt(pl.Callback):
    """Sends `signal` (SIGTERM by default) to this process at the end of batch `batch` of `epoch` in
    the stage `hook` names (`train_batch_end`, `validation_batch_end`, `test_batch_end`), once."""

    def __init__(self, *, hook: str, epoch: int = 0, batch: int = 0, signal: str = "SIGTERM") -> None:
        self.hook, self.epoch, self.batch, self.signal = hook, epoch, batch, signal
        self.sent = False

    def _maybe(self, trainer: pl.Trainer, hook: str, batch_idx: int) -> None:
        if self.sent or hook != self.hook or trainer.sanity_checking:
            return
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            self.sent = True
            os.kill(os.getpid(), signal.Signals[self.signal])

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._maybe(trainer, "train_batch_end", batch_idx)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._maybe(trainer, "validation_batch_end", batch_idx)

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._maybe(trainer, "test_batch_end", batch_idx)


class PauseAt(pl.Callback):
    """At the end of test batch `batch`, writes the file `marker` and waits until the file `release`
    exists (at most `timeout` seconds): the test does something to the run while it is there."""

    def __init__(self, *, marker: str, release: str, batch: int = 0, timeout: float = 120) -> None:
        self.marker, self.release, self.batch, self.timeout = Path(marker), Path(release), batch, timeout

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != self.batch:
            return
        self.marker.write_text("paused")
        deadline = time.monotonic() + self.timeout
        while not self.release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
