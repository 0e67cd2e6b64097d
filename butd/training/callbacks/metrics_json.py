"""The run's record on disk: `metrics.json`, with the per-epoch history that survives a resume."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

from butd.config.convergence import ConvergenceRule
from butd.files import atomic_write_json


def _floats(metrics: dict[str, Any], prefixes: tuple[str, ...]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k.startswith(prefixes) and not k.endswith("_step")}


class MetricsJSON(pl.Callback):
    """Keeps a per-epoch history and writes `metrics.json` in the run folder at the end of fit.

    `metrics.json` holds the best `val/score`, the `val/upper_bound` of that epoch, the
    last completed epoch (0-based, as Lightning counts), whether the run converged by the
    rule of `butd.config.convergence` (`converged`, `converged_epoch`, `convergence_rule`), the
    parameter count, the machine (`machine`: CPU, torch's threads, device, torch and CUDA
    versions) and the history. The history is part of the callback's checkpoint state, so a
    resumed run still reports the epochs before the interruption.

    `stop_when_converged`: end the fit at the first epoch at which the rule holds (the run's
    `trainer.max_epochs` stays the cap), so a study can run "until converged, at most N epochs".
    """

    def __init__(
        self,
        *,
        dirpath: str,
        monitor: str = "val/score",
        patience: int = ConvergenceRule.patience,
        min_delta: float = ConvergenceRule.min_delta,
        stop_when_converged: bool = False,
    ) -> None:
        self.path = Path(dirpath) / "metrics.json"
        self.monitor = monitor
        self.rule = ConvergenceRule(monitor=monitor, patience=patience, min_delta=min_delta)
        self.stop_when_converged = stop_when_converged
        self.history: list[dict[str, float]] = []
        #: the run folders of this run, the first one first: a resumed run inherits its
        #: predecessors' through the checkpoint, so `butd.report` counts them as one run
        self.lineage: list[str] = [str(self.path.parent.resolve())]
        #: the settings resumes changed (`resume_overrides`): key, value in the checkpoint, value
        #: then, the checkpoint; kept over later resumes as the lineage is
        self.resume_overrides: list[dict[str, Any]] = []
        self._epoch_started = time.time()
        #: the machine of the run (`butd.training.machine.describe`), set by `butd.train`
        self.machine: dict[str, Any] | None = None

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
        if self.stop_when_converged and self.rule.assess(self.history)["converged"]:
            trainer.should_stop = True

    def summary(self, pl_module: pl.LightningModule) -> dict[str, Any]:
        scored = [r for r in self.history if self.monitor in r]
        best = max(scored, key=lambda r: r[self.monitor]) if scored else {}
        return {
            self.monitor: best.get(self.monitor),
            "val/upper_bound": best.get("val/upper_bound"),
            "best_epoch": best.get("epoch"),
            "epoch": self.history[-1]["epoch"] if self.history else None,
            **self.rule.assess(self.history),
            "num_parameters": getattr(pl_module, "num_parameters", None),
            "machine": self.machine,
            "lineage": self.lineage,
            **({"resume_overrides": self.resume_overrides} if self.resume_overrides else {}),
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
        atomic_write_json(self.path, summary)

    @rank_zero_only
    def add(self, values: dict[str, Any]) -> None:
        """Merge `values` (the test split's metrics, warnings) into the metrics.json fit wrote."""
        summary = json.loads(self.path.read_text()) if self.path.is_file() else {}
        summary.update(values)
        atomic_write_json(self.path, summary)

    def state_dict(self) -> dict[str, Any]:
        state = {"history": self.history, "lineage": self.lineage}
        return state | ({"resume_overrides": self.resume_overrides} if self.resume_overrides else {})

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        # the earlier resumes' changes first, then this resume's (set before fit loads the state)
        self.resume_overrides = list(state_dict.get("resume_overrides", [])) + self.resume_overrides
        here = str(self.path.parent.resolve())
        self.lineage = [d for d in state_dict.get("lineage", []) if d != here] + [here]
