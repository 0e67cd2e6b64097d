"""The checks of a composed train config that its structured configs cannot make alone.

Types, unknown keys and ranges are the structured configs' (`butd.config.data`,
`butd.config.model`, `butd.config.training`); here are the checks that need more: the
optimizer's arguments against the torch class it names, the seed, and K against the boxes the
data on disk holds. Every error is a `ConfigError` naming the key, e.g.
`optim.optimizer.lr=-1 is invalid; expected a number > 0`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any

from omegaconf import DictConfig, OmegaConf

from butd.cache.load import stored_boxes
from butd.config.convergence import ConvergenceRule
from butd.config.data import DataConfig
from butd.config.debias import DebiasConfig
from butd.config.model import MODELS, OUTPUTS, ModelConfig
from butd.config.structured import to_typed
from butd.config.training import OptimConfig, SlurmConfig
from butd.errors import ConfigError

#: range checks of the usual optimizer arguments: (test, what is expected)
_OPTIM_RANGES: dict[str, tuple[Any, str]] = {
    "lr": (lambda v: v > 0, "a number > 0"),
    "eps": (lambda v: v > 0, "a number > 0"),
    "weight_decay": (lambda v: v >= 0, "a number >= 0"),
    "momentum": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "dampening": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "alpha": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
}


@dataclass(frozen=True)
class RunConfig:
    """The sections of a train config that build a run, typed and checked once
    (`validate_train_config`); the builders (`butd.training.run`) take this, never the raw config."""

    data: DataConfig
    model: ModelConfig
    debias: DebiasConfig
    optim: OptimConfig
    slurm: SlurmConfig
    #: draws the weights, the batches and the dropout masks
    seed: int
    compile: bool
    #: the data section as written (interpolations kept), recorded in checkpoints so that evaluate
    #: and predict find the cache on another machine
    data_section: dict[str, Any]

    @property
    def optimizer(self) -> dict[str, Any]:
        """The optimizer's `_partial_` spec as plain values (the module's hyper-parameter)."""
        return dict(self.optim.optimizer)


def check_optimizer(optim: Any) -> OptimConfig:
    """`optim.optimizer` names a torch optimizer class, and only its arguments, in range (imports
    torch); returns the typed section."""
    typed = to_typed(OptimConfig, optim or {}, "optim")
    spec = typed.optimizer
    if not isinstance(spec, Mapping) or "_target_" not in spec:
        raise ConfigError("optim.optimizer is missing or has no _target_ (e.g. torch.optim.Adamax)")
    target = str(spec["_target_"])
    module_name, _, class_name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"optim.optimizer._target_={target!r} cannot be imported ({err})") from err
    import torch

    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ConfigError(f"optim.optimizer._target_={target!r} is not a torch.optim.Optimizer class")
    if spec.get("_partial_") is not True:
        raise ConfigError("optim.optimizer._partial_ must be true: the parameters are passed in later")
    params = inspect.signature(cls.__init__).parameters
    accepted = {n for n, p in params.items() if n not in ("self", "params") and p.kind != p.VAR_KEYWORD}
    for key, value in spec.items():
        if key.startswith("_"):
            continue
        if key not in accepted:
            raise ConfigError(
                f"optim.optimizer.{key} is not an argument of {target}; valid: {sorted(accepted)}"
            )
        default = params[key].default
        numeric = isinstance(default, Real) and not isinstance(default, bool)
        if numeric and (isinstance(value, bool) or not isinstance(value, Real)):
            raise ConfigError(f"optim.optimizer.{key}={value!r} is invalid; expected a number")
        if key in _OPTIM_RANGES and isinstance(value, Real):
            test, expected = _OPTIM_RANGES[key]
            if not test(value):
                raise ConfigError(f"optim.optimizer.{key}={value!r} is invalid; expected {expected}")
        if key == "betas":
            ok = (
                isinstance(value, (list, tuple))
                and len(value) == 2
                and all(isinstance(b, Real) and not isinstance(b, bool) and 0 <= b < 1 for b in value)
            )
            if not ok:
                raise ConfigError(
                    f"optim.optimizer.betas={value!r} is invalid; expected two numbers in [0, 1)"
                )
    return typed


def check_output_and_debias(model: ModelConfig, debias: DebiasConfig) -> None:
    """The debias losses are defined on per-answer sigmoids: a softmax model trains with none.
    CF-VQA subtracts the question's direct effect from the image's: it needs a model that sees one."""
    method = debias.method
    if method.changes_inference and not MODELS[model.name].sees_image:
        raise ConfigError(
            f"debias={debias.name} with model={model.name}: the method subtracts the question's direct "
            "effect from the image's at inference, so the model must see the image; use model=butd "
            "(or another image model), or train the question-only model with debias=none"
        )
    if not OUTPUTS[model.output].per_answer and not method.any_output:
        raise ConfigError(
            f"model.output={model.output} with debias={debias.name}: the debias methods are defined on "
            "per-answer sigmoid outputs (butd.training.debias); use model.output=sigmoid, or debias=none"
        )


def check_convergence(node: Any) -> None:
    """`convergence.patience`, `.min_delta` and `.stop` (butd.config.convergence)."""
    if node is None:
        return
    ConvergenceRule(
        patience=node.get("patience", ConvergenceRule.patience),
        min_delta=node.get("min_delta", ConvergenceRule.min_delta),
    )
    stop = node.get("stop", False)
    if not isinstance(stop, bool):
        raise ConfigError(f"convergence.stop={stop!r} is invalid; expected true or false")


def check_trains_something(trainer: Any) -> None:
    """A run that would train no step (and then validate or test untrained weights), or never
    validate (and so select no checkpoint), is refused."""
    if trainer.get("fast_dev_run"):
        return
    for key in ("max_epochs", "max_steps", "limit_train_batches"):
        value = trainer.get(key)
        if value is not None and not isinstance(value, bool) and isinstance(value, Real) and value == 0:
            raise ConfigError(
                f"trainer.{key}={value} trains nothing, and the run would record the scores of untrained "
                f"weights; give trainer.{key} > 0 (to score a checkpoint: python -m butd.evaluate "
                "ckpt_path=... split=...)"
            )
    # a run that never validates has no val/score to select its checkpoint by
    limit = trainer.get("limit_val_batches")
    if limit is not None and not isinstance(limit, bool) and isinstance(limit, Real) and limit == 0:
        raise ConfigError(
            f"trainer.limit_val_batches={limit} never validates: the run would have no val/score and no "
            "best checkpoint (and test the last weights); give trainer.limit_val_batches > 0"
        )
    every, epochs = trainer.get("check_val_every_n_epoch"), trainer.get("max_epochs")
    if isinstance(every, int) and isinstance(epochs, int) and 0 < epochs < every:
        raise ConfigError(
            f"trainer.check_val_every_n_epoch={every} with trainer.max_epochs={epochs} never validates: "
            "the run would have no val/score and no best checkpoint; give a value <= trainer.max_epochs"
        )


def validate_train_config(cfg: DictConfig) -> RunConfig:
    """Every check that can run before data is read, each once: the data, model, optimizer and
    SLURM sections, the debias method, the seed, and K against the boxes stored on disk. Returns
    the typed sections the run is built from: the one conversion of the composed config."""
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed={seed!r} is invalid; expected an integer in [0, 2**32)")
    compile_ = cfg.get("compile", False)
    if not isinstance(compile_, bool):
        raise ConfigError(f"compile={compile_!r} is invalid; expected true or false")
    data = DataConfig.from_dict(cfg.data)
    model = ModelConfig.from_dict(cfg.model)
    debias = DebiasConfig.from_dict(cfg.get("debias"))
    check_output_and_debias(model, debias)
    check_trains_something(cfg.get("trainer") or {})
    optim = check_optimizer(cfg.get("optim"))
    slurm = to_typed(SlurmConfig, cfg.get("slurm") or {}, "slurm")
    check_convergence(cfg.get("convergence"))
    found = stored_boxes(data) if data.boxes == "fixed" else None
    if found is not None and data.num_boxes > found[0]:
        raise ConfigError(
            f"data.num_boxes={data.num_boxes} is invalid: the data holds {found[0]} boxes per image "
            f"({found[1]}); set data.num_boxes={found[0]}"
        )
    section = OmegaConf.to_container(cfg.data, resolve=False)
    return RunConfig(
        data=data,
        model=model,
        debias=debias,
        optim=optim,
        slurm=slurm,
        seed=seed,
        compile=compile_,
        data_section=section,  # type: ignore[arg-type]
    )
