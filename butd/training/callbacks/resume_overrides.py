"""The optimizer arguments a resume changed (`resume_overrides`), applied over the restored state."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl

from butd.training.resume import RESUME_OVERRIDABLE

log = logging.getLogger(__name__)


class ResumeOverrides(pl.Callback):
    """Applies the optimizer arguments `resume_overrides` changed over the optimizer state a resume
    restores (which would otherwise bring back the checkpoint's values, its learning rate included).

    `changes`: records of `allowed_changes` (keys `optim.optimizer.ARG`)."""

    def __init__(self, *, changes: list[dict[str, Any]]) -> None:
        self.changes = list(changes)

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        for change in self.changes:
            if not change["key"].startswith(RESUME_OVERRIDABLE):
                continue  # optim.clip_grad_norm: the trainer applies the command's
            arg = change["key"][len(RESUME_OVERRIDABLE) :]
            for state in checkpoint.get("optimizer_states") or []:
                for group in state.get("param_groups", []):
                    group[arg] = change["now"]
            log.info(
                "resumed with %s=%r (%r in the checkpoint)",
                change["key"],
                change["now"],
                change["checkpoint"],
            )
