"""The debias group's structured config: which bias-reduction method trains the model.

Registered with Hydra's ConfigStore as `debias/base`; `conf/debias/*.yaml` start from it.
`none` is the reference loss. Never imports torch: `butd.training.debias.build_debias` makes
the loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from butd.config.structured import to_typed
from butd.errors import ConfigError

#: `butd.training.debias.build_debias` makes a loss for each
DEBIAS_METHODS: tuple[str, ...] = (
    "none",
    "reweight",
    "bias_product",
    "learned_mixin",
    "lmh",
    "rubi",
    "gge",
    "gge_q",
    "gge_dq",
    "cfvqa",
)
#: the methods that read the question-type prior, so the data must have question types
NEEDS_PRIOR: tuple[str, ...] = ("reweight", "bias_product", "learned_mixin", "lmh", "gge", "gge_dq")
#: the methods with a question-only bias branch trained greedily, in one step or two (`mode`)
GGE_BRANCH: tuple[str, ...] = ("gge_q", "gge_dq")
#: `mode`: "tog" trains the branch and the model in one optimizer step, "iter" in two per batch
MODES: tuple[str, ...] = ("tog", "iter")


@dataclass
class DebiasConfig:
    """A method and its settings; `entropy_weight` is LMH's w_H (0.36 in Clark et al.'s VQA runs),
    `smooth_init` the initial w_s of the learned prior smoothing s(w_s) (bias product,
    Learned-Mixin, LMH), `mode` how GGE-Q and GGE-DQ step: "tog" (one optimizer step on the sum
    of the branch's and the model's losses) or "iter" (a branch step, then a model step)."""

    name: str = "none"
    entropy_weight: float = 0.36
    smooth_init: float = -1.0
    mode: str = "tog"

    def __post_init__(self) -> None:
        if self.name not in DEBIAS_METHODS:
            raise ConfigError(f"debias.name={self.name!r} is invalid; expected one of {list(DEBIAS_METHODS)}")
        if self.entropy_weight < 0:
            raise ConfigError(
                f"debias.entropy_weight={self.entropy_weight!r} is invalid; expected a value >= 0"
            )
        if self.mode not in MODES:
            raise ConfigError(f"debias.mode={self.mode!r} is invalid; expected one of {list(MODES)}")
        if self.mode == "iter" and self.name not in GGE_BRANCH:
            raise ConfigError(
                f"debias.mode=iter with debias={self.name}: only {' and '.join(GGE_BRANCH)} train in two "
                "steps per batch; use debias.mode=tog, or debias=gge_q / gge_dq"
            )

    @property
    def two_steps(self) -> bool:
        """Two optimizer steps per batch (Lightning's manual optimisation)."""
        return self.mode == "iter"

    @property
    def needs_prior(self) -> bool:
        return self.name in NEEDS_PRIOR

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> DebiasConfig:
        """From a composed `cfg.debias` node (None, as in configs older than the group: `none`)."""
        return cls() if values is None else to_typed(cls, values, "debias")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
