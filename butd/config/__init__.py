"""Configuration: the structured configs of the groups, registered with Hydra's ConfigStore; the
resolvers the YAML files use; run and job names; the one wrapper every entry point runs through.

`register()` makes all of that known to Hydra; `butd.config.entry.entry_point` calls it before
Hydra composes a config, and tests that compose with Hydra's compose API call it too. Nothing
here imports torch, so a config error or `--help` answers before torch loads.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from butd.config.data import DataConfig
from butd.config.model import ModelConfig
from butd.config.resolvers import register_resolvers
from butd.config.training import OptimConfig, SlurmConfig

#: group -> the schema its YAML files start from (`defaults: [base, _self_]`)
SCHEMAS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
    "slurm": SlurmConfig,
}


def register() -> None:
    """Resolvers, and each group's schema as `<group>/base` in Hydra's ConfigStore (idempotent)."""
    register_resolvers()
    store = ConfigStore.instance()
    for group, schema in SCHEMAS.items():
        store.store(group=group, name="base", node=schema)


__all__ = ["SCHEMAS", "DataConfig", "ModelConfig", "OptimConfig", "SlurmConfig", "register"]
