"""Callbacks of a training run: its record on disk (metrics.json), what a comparison of runs
needs (throughput, best score, size), a divergence stop, and RNG states that resume.

Checkpointing callbacks live in `butd.training.checkpoints`.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_only

from butd.config.convergence import ConvergenceRule
from butd.data.batch import VQABatch
from butd.errors import UserError


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
        patience: int = 5,
        min_delta: float = 0.1,
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.partial")
        tmp.write_text(json.dumps(summary, indent=2))
        os.replace(tmp, self.path)

    @rank_zero_only
    def add(self, values: dict[str, Any]) -> None:
        """Merge `values` (the test split's metrics, warnings) into the metrics.json fit wrote."""
        summary = json.loads(self.path.read_text()) if self.path.is_file() else {}
        summary.update(values)
        tmp = self.path.with_suffix(".json.partial")
        tmp.write_text(json.dumps(summary, indent=2))
        os.replace(tmp, self.path)

    def state_dict(self) -> dict[str, Any]:
        state = {"history": self.history, "lineage": self.lineage}
        return state | ({"resume_overrides": self.resume_overrides} if self.resume_overrides else {})

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        # the earlier resumes' changes first, then this resume's (set before fit loads the state)
        self.resume_overrides = list(state_dict.get("resume_overrides", [])) + self.resume_overrides
        here = str(self.path.parent.resolve())
        self.lineage = [d for d in state_dict.get("lineage", []) if d != here] + [here]


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


#: question ids quoted in the message; divergence.json holds them all
_QUOTED_IDS = 20


class DivergenceError(UserError):
    """Training produced a non-finite loss or gradient; the message says where and what to try."""


class DivergenceGuard(pl.Callback):
    """Stops training at the first non-finite loss or gradient norm; nothing diverged is ever saved.

    By default (`strict=False`) a step only records its loss, the gradient norm that clipping
    computed and which rows of its batch hold non-finite features, all as device tensors; they are
    read together at intervals: on the steps where Lightning writes logs, at the end of each
    epoch's training, before validation and before any checkpoint is written (the exception
    then ends `fit` before the file exists). So a step never waits for the device, a diverged
    run wastes at most `trainer.log_every_n_steps` steps, and the report still names the first
    bad step and its question ids. `strict=True` checks every step before the optimizer step,
    reading the device twice per step: for debugging.

    The step, the batch's question ids (those whose features are not finite singled out) and
    advice go into the message and into `divergence.json` in the run folder.
    """

    def __init__(
        self, *, dirpath: str | None = None, check_gradients: bool = True, strict: bool = False
    ) -> None:
        self.path = Path(dirpath) / "divergence.json" if dirpath else None
        self.check_gradients = check_gradients
        self.strict = strict
        self._batch: VQABatch | None = None
        self._batch_idx = -1
        self._step = 0
        #: steps not yet checked: where each ran and its device values
        self._pending: list[dict[str, Any]] = []

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch, self._batch_idx, self._step = batch, batch_idx, trainer.global_step

    def _checks_gradients(self, trainer: pl.Trainer) -> bool:
        # With a gradient scaler (fp16) an overflow is routine: the scaler skips that step itself.
        return self.check_gradients and getattr(trainer.precision_plugin, "scaler", None) is None

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor
    ) -> None:
        if self.strict and not bool(torch.isfinite(loss.detach()).all()):
            self._stop(trainer, f"the training loss is {loss.detach().float().item()}")

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if not self.strict or not self._checks_gradients(trainer):
            return
        norm = _grad_norm(pl_module)
        if norm is not None and not bool(torch.isfinite(norm)):
            self._stop(trainer, f"the gradient norm is {norm.item()}")

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.strict:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        norm = None
        if self._checks_gradients(trainer):
            # the norm gradient clipping computed (VQAModule), else one of our own
            norm = getattr(pl_module, "grad_norm", None)
            norm = norm if isinstance(norm, torch.Tensor) else _grad_norm(pl_module)
        self._pending.append(
            {
                "step": self._step,
                "epoch": trainer.current_epoch,
                "batch_idx": batch_idx,
                "loss": loss.detach() if isinstance(loss, torch.Tensor) else None,
                "norm": norm.detach() if isinstance(norm, torch.Tensor) else None,
                "question_id": getattr(batch, "question_id", None),
                "bad_rows": _bad_feature_rows(batch),
            }
        )
        connector = getattr(trainer, "_logger_connector", None)
        if getattr(connector, "should_update_logs", True):
            self.check(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.check(trainer)

    def check(self, trainer: pl.Trainer) -> None:
        """Reads the pending steps' values (one device read) and stops at the first non-finite one."""
        pending, self._pending = self._pending, []
        values = [(p["loss"], p["norm"]) for p in pending]
        flags = [
            torch.stack([torch.isfinite(x).all() for x in pair if x is not None]).all()
            for pair in values
            if any(x is not None for x in pair)
        ]
        if not flags or bool(torch.stack(flags).all()):
            return
        first = next(p for p in pending if not _finite(p["loss"]) or not _finite(p["norm"]))
        if not _finite(first["loss"]):
            what = f"the training loss is {first['loss'].float().item()}"
        else:
            what = f"the gradient norm is {first['norm'].item()}"
        bad = first["bad_rows"]
        ids = _ids(first["question_id"])
        bad_ids = (
            [] if bad is None or first["question_id"] is None else _masked_ids(first["question_id"], bad)
        )
        self._stop(
            trainer,
            what,
            step=first["step"],
            epoch=first["epoch"],
            batch_idx=first["batch_idx"],
            ids=ids,
            bad_features=bad_ids,
        )

    def _stop(
        self,
        trainer: pl.Trainer,
        what: str,
        *,
        step: int | None = None,
        epoch: int | None = None,
        batch_idx: int | None = None,
        ids: list[int] | None = None,
        bad_features: list[int] | None = None,
    ) -> None:
        """Writes the record and raises; without `step` etc., about the batch in hand (strict mode)."""
        batch = self._batch
        step = trainer.global_step if step is None else step
        epoch = trainer.current_epoch if epoch is None else epoch
        batch_idx = self._batch_idx if batch_idx is None else batch_idx
        ids = _ids(getattr(batch, "question_id", None)) if ids is None else ids
        bad_features = _ids_with_bad_features(batch) if bad_features is None else bad_features
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        # (a save this check interrupted has set its path but written nothing)
        kept = sorted(
            {p for cb in trainer.checkpoint_callbacks if (p := cb.best_model_path) and Path(p).exists()}
        )
        record = {
            "reason": what,
            "global_step": step,
            "epoch": epoch,
            "batch_idx": batch_idx,
            "learning_rate": lr,
            "question_ids": ids,
            "question_ids_with_nonfinite_features": bad_features,
            "checkpoints_kept": kept,
        }
        lines = [
            f"training diverged at global step {step} (epoch {epoch}, batch {batch_idx}): {what}.",
            f"Question ids of the batch: {_quote(ids)}.",
        ]
        if bad_features:
            lines.append(
                f"The image features of questions {_quote(bad_features)} are not finite: the data is "
                "damaged; rebuild the cache (python -m butd.prepare ... force=true) or fix the feature file."
            )
        lines.append(
            "Nothing of the diverged state was saved; the checkpoints on disk are from before it"
            + (": " + ", ".join(kept) if kept else " (none yet)")
            + "."
        )
        lr_hint = f"optim.optimizer.lr={lr:g} now, try {lr / 10:g}" if lr else "optim.optimizer.lr"
        new_lr = f"{lr / 10:g}" if lr else "NEW"
        clip = trainer.gradient_clip_val
        clip_hint = (
            f"optim.clip_grad_norm={clip:g} now" if clip else "optim.clip_grad_norm is off now, try 0.25"
        )
        lines.append(
            f"What to try: a lower learning rate ({lr_hint}); gradient clipping ({clip_hint}); a look at "
            "the data of these questions (NaN/Inf features or targets). Then resume from a checkpoint "
            f"above with ckpt_path=PATH (with a lower learning rate, add optim.optimizer.lr={new_lr} "
            "'resume_overrides=[optim.optimizer.lr]'; another clip: optim.clip_grad_norm=X "
            "'resume_overrides=[optim.clip_grad_norm]'; the change is recorded in metrics.json), or "
            "start again."
        )
        if self.path is not None and trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(record, indent=2))
            lines.append(f"Details: {self.path}")
        raise DivergenceError("\n".join(lines))


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(i) for i in torch.as_tensor(value).reshape(-1).tolist()]


def _finite(x: torch.Tensor | None) -> bool:
    return x is None or bool(torch.isfinite(x).all())


def _grad_norm(pl_module: pl.LightningModule) -> torch.Tensor | None:
    grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else None


def _bad_feature_rows(batch: VQABatch | None) -> torch.Tensor | None:
    """[batch] bool on the batch's device: rows whose real boxes hold a non-finite feature or
    geometry; padded boxes (False in the optional `v_mask` [batch, k]) are left out, the model
    zeroes them unread. One reduction per tensor, summed in float32 (a NaN or Inf survives the
    sum), never read here."""
    if not isinstance(batch, VQABatch):
        return None
    mask, bad = batch.v_mask, None
    for x in (batch.v, batch.b):
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dim() >= 1:
            if isinstance(mask, torch.Tensor) and x.dim() == 3 and mask.shape == x.shape[:2]:
                x = x.masked_fill(~mask.to(device=x.device, dtype=torch.bool).unsqueeze(-1), 0)
            rows = ~torch.isfinite(x.reshape(x.size(0), -1).sum(dim=1, dtype=torch.float32))
            bad = rows if bad is None else bad | rows
    return bad


def _masked_ids(ids: Any, rows: torch.Tensor) -> list[int]:
    return _ids(torch.as_tensor(ids)[rows.cpu()])


def _ids_with_bad_features(batch: VQABatch | None) -> list[int]:
    """Question ids of `_bad_feature_rows` (reads the device: for reports only)."""
    ids, bad = getattr(batch, "question_id", None), _bad_feature_rows(batch)
    if ids is None or bad is None or not bool(bad.any()):
        return []
    return _masked_ids(ids, bad)


def _quote(ids: list[int]) -> str:
    shown = ", ".join(map(str, ids[:_QUOTED_IDS]))
    return f"[{shown}, ... {len(ids)} in all]" if len(ids) > _QUOTED_IDS else f"[{shown}]"


class RNGState(pl.Callback):
    """Saves the random number generators with every checkpoint and restores them on resume.

    Lightning restores weights, optimizer, loops and callback states but not the RNGs, so
    a resumed run would draw other dropout masks than the uninterrupted one. The states are
    taken when the checkpoint is written and put back when training starts again, the last
    point before the next random draw. They are stored as tensors and plain values, so
    the checkpoint still loads with `weights_only=True`.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
            "python": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = dict(state_dict) if state_dict else None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state, self._pending = self._pending, None
        if not state:
            return
        torch.set_rng_state(state["torch"])
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        py = state["python"]
        random.setstate((py[0], tuple(py[1]), py[2]))
        cuda = state.get("cuda")
        if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
