"""Validation of a composed config before anything is read, built or written.

`DataConfig` and `ModelConfig` are the schemas of their groups (field names, types and
ranges); this module adds the type check they share, the optimizer's schema (taken from
the optimizer class itself, so any `torch.optim` class works) and the checks that need the
files on disk (K against the boxes stored). Every error is a `ConfigError` naming the key,
e.g. `model.num_hid=-3 is invalid; expected a positive integer`.
"""

from __future__ import annotations

import importlib
import inspect
import json
import signal
import types
import typing
from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from butd.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# Types of dataclass fields


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is Any:
        return "anything"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin in (list, tuple):
        return f"a list of {_describe(typing.get_args(tp)[0])}" if typing.get_args(tp) else "a list"
    if origin is dict:
        args = typing.get_args(tp)
        return f"a mapping of {_describe(args[0])} to {_describe(args[1])}" if args else "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _matches(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, Real) and not isinstance(value, bool)
    if origin in (list, tuple) or tp in (list, tuple):
        args = typing.get_args(tp)
        return isinstance(value, (list, tuple)) and (not args or all(_matches(v, args[0]) for v in value))
    if origin is dict or tp is dict:
        args = typing.get_args(tp)
        return isinstance(value, Mapping) and (
            not args or all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items())
        )
    return isinstance(value, tp) if isinstance(tp, type) else True


def check_types(schema: type, values: Mapping[str, Any], section: str) -> None:
    """Each known key of `values` has the type its dataclass field declares; unknown keys are left
    to the caller (which lists the valid ones)."""
    hints = typing.get_type_hints(schema)
    for key, value in values.items():
        if key in hints and not _matches(value, hints[key]):
            raise ConfigError(
                f"{section}.{key}={value!r} is invalid; expected {_describe(hints[key])}, "
                f"got {type(value).__name__}"
            )


# ---------------------------------------------------------------------------------------------
# The optimizer: `optim.optimizer` is a `_partial_` of a torch optimizer class


#: range checks of the usual optimizer arguments: (test, what is expected)
_OPTIM_RANGES: dict[str, tuple[Any, str]] = {
    "lr": (lambda v: v > 0, "a number > 0"),
    "eps": (lambda v: v > 0, "a number > 0"),
    "weight_decay": (lambda v: v >= 0, "a number >= 0"),
    "momentum": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "dampening": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "alpha": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
}


def _plain(node: Any) -> Any:
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def validate_optim(optim: Any) -> None:
    """`optim.optimizer` names a torch optimizer and only its arguments, in range; `clip_grad_norm` > 0."""
    optim = _plain(optim) or {}
    unknown = sorted(set(optim) - {"optimizer", "clip_grad_norm"})
    if unknown:
        raise ConfigError(f"unknown optim config keys {unknown}; valid keys: ['clip_grad_norm', 'optimizer']")
    clip = optim.get("clip_grad_norm")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, Real) or clip <= 0):
        raise ConfigError(
            f"optim.clip_grad_norm={clip!r} is invalid; expected a number > 0, or null for no clipping"
        )
    spec = optim.get("optimizer")
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


# ---------------------------------------------------------------------------------------------
# The whole train config


_SIGNALS = ("SIGUSR1", "SIGUSR2", "SIGTERM")


def validate_slurm(slurm: Any) -> None:
    slurm = _plain(slurm) or {}
    unknown = sorted(set(slurm) - {"auto_requeue", "requeue_signal"})
    if unknown:
        raise ConfigError(
            f"unknown slurm config keys {unknown}; valid keys: ['auto_requeue', 'requeue_signal']"
        )
    if not isinstance(slurm.get("auto_requeue", True), bool):
        raise ConfigError(f"slurm.auto_requeue={slurm['auto_requeue']!r} is invalid; expected true or false")
    name = slurm.get("requeue_signal", "SIGUSR1")
    if name not in _SIGNALS or not hasattr(signal, str(name)):
        raise ConfigError(f"slurm.requeue_signal={name!r} is invalid; expected one of {list(_SIGNALS)}")


def stored_boxes(data: Any) -> tuple[int, Path] | None:
    """Boxes per image that the data on disk holds, and where that was read: the first row of the
    feature file (what `prepare` would store), else the cache manifest. None when neither exists."""
    from butd.data.cache import MANIFEST
    from butd.data.features import FeatureFileError, decode_row, iter_tsv

    for name in data.features:
        path = data.raw_path / name
        if path.is_file():
            try:
                for line_no, line in iter_tsv(path):
                    return decode_row(line, path=path, line_no=line_no).boxes.shape[0], path
            except (OSError, UnicodeDecodeError, FeatureFileError):
                return None  # prepare reports a damaged feature file with its own message
    manifest = data.cache_path / MANIFEST
    if manifest.is_file():
        try:
            return int(json.loads(manifest.read_text())["settings"]["num_boxes"]), manifest
        except (ValueError, KeyError, TypeError):
            return None  # load_cache reports a damaged manifest
    return None


def validate_train_config(cfg: DictConfig) -> None:
    """Every check that can run before data is read: the data, model, optimizer and SLURM
    sections, the seed, and K against the boxes stored on disk."""
    from butd.config import model_config
    from butd.data.config import DataConfig

    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed={seed!r} is invalid; expected an integer in [0, 2**32)")
    data = DataConfig.from_dict(cfg.data)
    model_config(cfg.model)
    validate_optim(cfg.get("optim"))
    validate_slurm(cfg.get("slurm"))
    found = stored_boxes(data) if data.boxes == "fixed" else None
    if found is not None and data.num_boxes > found[0]:
        raise ConfigError(
            f"data.num_boxes={data.num_boxes} is invalid: the data holds {found[0]} boxes per image "
            f"({found[1]}); set data.num_boxes={found[0]}"
        )
