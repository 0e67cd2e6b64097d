"""What a comparison of runs needs and the module does not log: throughput, best score, size."""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only


class RunStats(pl.Callback):
    """Logs what a comparison of runs needs and the module does not log itself.

    - `train/questions_per_s`: training throughput of the epoch (all processes together),
      timed from the epoch's start to its last training batch, so validation is left out;
    - `val/score_best`: the best `val/score` so far, so W&B's summary holds the best, not the last;
    - `num_parameters` in the W&B summary, beside the config.
    """

    def __init__(self, *, monitor: str = "val/score") -> None:
        self.monitor = monitor
        self.best: float | None = None
        self._started = time.perf_counter()
        self._last_batch = self._started
        self._questions = 0

    @rank_zero_only
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from pytorch_lightning.loggers import WandbLogger

        count = getattr(pl_module, "num_parameters", None)
        for lg in trainer.loggers:
            if isinstance(lg, WandbLogger) and count is not None:
                lg.experiment.summary["num_parameters"] = count

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = self._last_batch = time.perf_counter()
        self._questions = 0

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._questions += len(batch)
        self._last_batch = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Epoch-end validation has run by now, so the monitored score is this epoch's.
        seconds = self._last_batch - self._started
        if self._questions and seconds > 0:
            rate = self._questions / seconds
            pl_module.log("train/questions_per_s", rate, sync_dist=True, reduce_fx="sum")
        score = trainer.callback_metrics.get(self.monitor)
        if score is not None:
            score = float(score)
            self.best = score if self.best is None else max(self.best, score)
        if self.best is not None:
            pl_module.log(f"{self.monitor}_best", self.best, sync_dist=True)  # equal on every rank

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")
