"""The debias group's structured config: which bias-reduction method trains the model.

Registered with Hydra's ConfigStore as `debias/base`; `conf/debias/*.yaml` start from it.
`none` is the reference loss. `DEBIAS_METHODS` declares every method once, with its properties
(`butd.config.registry`). Never imports torch: `butd.training.debias.build_debias` makes the loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from butd.config.registry import Option, Registry
from butd.config.structured import to_typed
from butd.errors import ConfigError

#: `mode`: "tog" trains the branch and the model in one optimizer step, "iter" in two per batch
MODES: tuple[str, ...] = ("tog", "iter")


@dataclass(frozen=True)
class DebiasMethod(Option):
    """A debias method's entry: what the rest of butd asks about it. Its loss is the
    `butd.training.debias.DebiasLoss` subclass bound to the name (`DEBIAS_METHODS.implements`)."""

    #: reads the question-type prior: the training data must have question types
    needs_prior: bool = False
    #: reads the joint representation h and the question embedding q (`joint`, `q_emb`: the
    #: model's `forward_parts`); else the model is called as it is, compiled with compile=true
    reads_parts: bool = False
    #: reads the mean object feature of each image (`v_emb`, a vision-only branch)
    needs_visual: bool = False
    #: answers with scores other than the main logits (`DebiasLoss.answer_scores`): validation,
    #: test, evaluate and predict use them
    changes_inference: bool = False
    #: adds the entropy of the scaled bias, weighted by `debias.entropy_weight` (LMH)
    entropy_penalty: bool = False
    #: trains any `model.output` (the methods are defined on per-answer sigmoids: only `none` does)
    any_output: bool = False
    #: the `debias.mode` values it trains under: "tog" (one optimizer step per batch) and, for a
    #: method with a bias branch trained greedily, "iter" (two steps per batch: Lightning's manual
    #: optimisation)
    modes: tuple[str, ...] = ("tog",)


#: `debias.name`: every method, with its properties; `conf/debias/<name>.yaml` selects it
DEBIAS_METHODS: Registry[DebiasMethod] = Registry(
    "debias.name",
    [
        DebiasMethod("none", any_output=True),
        DebiasMethod("reweight", needs_prior=True),
        DebiasMethod("bias_product", needs_prior=True),
        DebiasMethod("learned_mixin", needs_prior=True, reads_parts=True),
        DebiasMethod("lmh", needs_prior=True, reads_parts=True, entropy_penalty=True),
        DebiasMethod("rubi", reads_parts=True),
        DebiasMethod("gge", needs_prior=True),
        DebiasMethod("gge_q", reads_parts=True, modes=MODES),
        DebiasMethod("gge_dq", needs_prior=True, reads_parts=True, modes=MODES),
        DebiasMethod("cfvqa", reads_parts=True, needs_visual=True, changes_inference=True),
    ],
)


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
        method = DEBIAS_METHODS[self.name]
        if self.entropy_weight < 0:
            raise ConfigError(
                f"debias.entropy_weight={self.entropy_weight!r} is invalid; expected a value >= 0"
            )
        if self.mode not in MODES:
            raise ConfigError(f"debias.mode={self.mode!r} is invalid; expected one of {list(MODES)}")
        if self.mode not in method.modes:
            both = [m.name for m in DEBIAS_METHODS if self.mode in m.modes]
            raise ConfigError(
                f"debias.mode={self.mode} with debias={self.name}: only {' and '.join(both)} train in two "
                f"steps per batch; use debias.mode=tog, or debias={' / '.join(both)}"
            )

    @property
    def method(self) -> DebiasMethod:
        """The method's registry entry (its properties)."""
        return DEBIAS_METHODS[self.name]

    @property
    def two_steps(self) -> bool:
        """Two optimizer steps per batch (Lightning's manual optimisation)."""
        return self.mode == "iter"

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> DebiasConfig:
        """From a composed `cfg.debias` node (None, as in configs older than the group: `none`)."""
        return cls() if values is None else to_typed(cls, values, "debias")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
