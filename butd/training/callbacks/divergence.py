"""A divergence stop: training ends at the first non-finite loss or gradient norm, with a report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from butd.data.batch import VQABatch
from butd.errors import UserError
from butd.files import atomic_write_json

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
            atomic_write_json(self.path, record)
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
