"""Progress of a training run: tqdm bars on a terminal, and one summary line per epoch.

On a terminal Lightning's bars run as usual, except that each epoch's bar is left finished on its
own line, so nothing that is logged afterwards (the epoch's summary, "`Trainer.fit` stopped") is
glued onto it. In a file, a pipe or a SLURM log (stdout is not a terminal) there are no bars at
all, whose carriage-return frames would fill the file: the summary line is the epoch's record.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar

from butd.config.output import terminal

log = logging.getLogger(__name__)

#: the metrics an epoch's summary line shows, in this order, when the run logs them
EPOCH_METRICS: tuple[str, ...] = ("train/loss_epoch", "train/score", "val/loss", "val/score", "val/vqa_acc")


def epoch_line(*, epoch: int, max_epochs: int, metrics: dict[str, Any], seconds: float) -> str:
    """`epoch 3/14: train/loss_epoch 2.914, train/score 61.20, val/loss 3.017, val/score 60.05, ... (9.8 s)`:
    the epoch is 0-based, as in checkpoint names and metrics.json, out of the last epoch's number."""
    parts = []
    for key in EPOCH_METRICS:
        if key in metrics:
            value = float(metrics[key])
            parts.append(f"{key} {value:.3f}" if "loss" in key else f"{key} {value:.2f}")
    last = f"/{max_epochs - 1}" if max_epochs > 0 else ""
    return f"epoch {epoch}{last}: {', '.join(parts) or 'no metrics'} ({seconds:.1f} s)"


class EpochProgress(TQDMProgressBar):
    """Lightning's tqdm bars where stdout is a terminal (`bars=None`: decided then), none
    elsewhere; in both cases one summary line per training epoch (`epoch_line`), logged."""

    def __init__(self, *, refresh_rate: int = 1, bars: bool | None = None) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=True)
        self.bars = terminal() if bars is None else bars
        if not self.bars:
            self.disable()
        self._epoch_started = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self._epoch_started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)  # the bar is closed: the line ends here
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        log.info(
            "%s",
            epoch_line(
                epoch=trainer.current_epoch,
                max_epochs=trainer.max_epochs if trainer.max_epochs is not None else -1,
                metrics=dict(trainer.callback_metrics),
                seconds=time.perf_counter() - self._epoch_started,
            ),
        )
