"""Typed configs from composed Hydra nodes: OmegaConf checks the types and the keys, the
dataclass's `__post_init__` the ranges; either failure is one `ConfigError` naming the key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from butd.config.plain import refuse_interpolations
from butd.errors import ConfigError

T = TypeVar("T")


def to_typed(schema: type[T], node: DictConfig | Mapping[str, Any], section: str) -> T:
    """`node` (a composed group such as `cfg.model`, or a plain mapping) as a `schema` instance.

    Raises ConfigError: `model.num_hid='abc' is invalid; Value 'abc' of type 'str' could not be
    converted to Integer`, `unknown model config key 'num_hidden'; valid keys: [...]`.
    """
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    else:
        # a plain mapping is data (a checkpoint's hyper-parameters, a file's section): merged into a
        # structured config, a `${...}` in it would become an interpolation and be resolved
        refuse_interpolations(node, source=f"the {section} config", key=section)
    try:
        typed = OmegaConf.merge(OmegaConf.structured(schema), dict(node))
        return OmegaConf.to_object(typed)  # type: ignore[return-value]
    except ConfigKeyError as err:
        valid = sorted(k for k in schema.__dataclass_fields__ if not k.startswith("_"))
        raise ConfigError(f"unknown {section} config key '{err.full_key}'; valid keys: {valid}") from None
    except OmegaConfBaseException as err:
        key = err.full_key
        value = dict(node).get(key, "<missing>") if key else "<missing>"
        reason = str(err.msg).splitlines()[0] if getattr(err, "msg", None) else str(err)
        raise ConfigError(f"{section}.{key}={value!r} is invalid; {reason}") from None
