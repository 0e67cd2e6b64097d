"""Callbacks that keep a run's record on disk, readable without W&B."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only


def _floats(metrics: dict[str, Any], prefixes: tuple[str, ...]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k.startswith(prefixes) and not k.endswith("_step")}


class MetricsJSON(pl.Callback):
    """Keeps a per-epoch history and writes `metrics.json` in the run folder at the end of fit.

    `metrics.json` holds the best `val/score`, the `val/upper_bound` of that epoch, the
    last completed epoch (0-based, as Lightning counts), the parameter count and the
    history. The history is part of the callback's checkpoint state, so a resumed run
    still reports the epochs before the interruption.
    """

    def __init__(self, *, dirpath: str, monitor: str = "val/score") -> None:
        self.path = Path(dirpath) / "metrics.json"
        self.monitor = monitor
        self.history: list[dict[str, float]] = []
        self._epoch_started = time.time()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_started = time.time()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Validation at epoch end has already run, so train/* and val/* are both current.
        if trainer.sanity_checking:
            return
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        row.update(_floats(trainer.callback_metrics, ("train/", "val/")))
        row["epoch_seconds"] = round(time.time() - self._epoch_started, 3)
        self.history = [r for r in self.history if r["epoch"] != row["epoch"]] + [row]

    def summary(self, pl_module: pl.LightningModule) -> dict[str, Any]:
        scored = [r for r in self.history if self.monitor in r]
        best = max(scored, key=lambda r: r[self.monitor]) if scored else {}
        return {
            self.monitor: best.get(self.monitor),
            "val/upper_bound": best.get("val/upper_bound"),
            "best_epoch": best.get("epoch"),
            "epoch": self.history[-1]["epoch"] if self.history else None,
            "num_parameters": getattr(pl_module, "num_parameters", None),
            "history": self.history,
        }

    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.fast_dev_run:
            return
        summary = self.summary(pl_module)
        for ckpt in trainer.checkpoint_callbacks:
            if getattr(ckpt, "monitor", None) == self.monitor and ckpt.best_model_path:
                summary["best_checkpoint"] = ckpt.best_model_path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.partial")
        tmp.write_text(json.dumps(summary, indent=2))
        os.replace(tmp, self.path)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
