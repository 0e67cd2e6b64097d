"""Structured configs of the optimizer and SLURM groups, registered as `optim/base` and `slurm/base`.

`optim.optimizer` is a `_partial_` of any `torch.optim` class, so its own arguments are checked
against that class (`butd.training.validate.check_optimizer`), once torch is imported.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from numbers import Real
from typing import Any

from omegaconf import MISSING

from butd.errors import ConfigError

#: signals SLURM can send before a time limit that a requeue can be set to
REQUEUE_SIGNALS = ("SIGUSR1", "SIGUSR2", "SIGTERM")


@dataclass
class OptimConfig:
    """The optimizer (a `_partial_` of a torch optimizer class) and the gradient-norm clip."""

    optimizer: dict[str, Any] = MISSING
    #: None: no clipping (the reference clips at 0.25)
    clip_grad_norm: float | None = 0.25

    def __post_init__(self) -> None:
        clip = self.clip_grad_norm
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, Real) or clip <= 0):
            raise ConfigError(
                f"optim.clip_grad_norm={clip!r} is invalid; expected a number > 0, or null for no clipping"
            )


@dataclass
class SlurmConfig:
    """Pre-emption under SLURM: save and requeue on `requeue_signal` (ignored outside SLURM)."""

    auto_requeue: bool = True
    requeue_signal: str = "SIGUSR1"

    def __post_init__(self) -> None:
        name = self.requeue_signal
        if name not in REQUEUE_SIGNALS or not hasattr(signal, name):
            raise ConfigError(
                f"slurm.requeue_signal={name!r} is invalid; expected one of {list(REQUEUE_SIGNALS)}"
            )
