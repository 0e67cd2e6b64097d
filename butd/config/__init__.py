"""Configuration: the structured configs of the groups, registered with Hydra's ConfigStore; the
resolvers the YAML files use; run and job names; the one wrapper every entry point runs through.

`register()` makes all of that known to Hydra; `butd.config.entry.entry_point` calls it before
Hydra composes a config, and tests that compose with Hydra's compose API call it too. Nothing
here imports torch, so a config error or `--help` answers before torch loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from butd.config.data import DataConfig
from butd.config.debias import DebiasConfig
from butd.config.model import ModelConfig
from butd.config.resolvers import register_resolvers
from butd.config.training import OptimConfig, SlurmConfig

#: the repository's `conf/` folder
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

#: group -> the schema its YAML files start from (`defaults: [base, _self_]`)
SCHEMAS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "debias": DebiasConfig,
    "optim": OptimConfig,
    "slurm": SlurmConfig,
}


def register() -> None:
    """Resolvers, and each group's schema as `<group>/base` in Hydra's ConfigStore (idempotent)."""
    register_resolvers()
    store = ConfigStore.instance()
    for group, schema in SCHEMAS.items():
        store.store(group=group, name="base", node=schema)


def compose(
    config_name: str, overrides: Sequence[str] = (), *, return_hydra_config: bool = False
) -> DictConfig:
    """`conf/<config_name>.yaml` with `overrides`, as the entry point of that name composes it
    (for tests, scripts and notebooks; Hydra's compose API, schemas and resolvers registered)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)


__all__ = [
    "CONF_DIR",
    "SCHEMAS",
    "compose",
    "DataConfig",
    "DebiasConfig",
    "ModelConfig",
    "OptimConfig",
    "SlurmConfig",
    "register",
]
