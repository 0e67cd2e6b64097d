"""Hydra glue shared by the entry points: resolvers, typed views of config groups, paths."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from butd.errors import ConfigError

if TYPE_CHECKING:  # torch stays unimported for `prepare` and its worker processes
    from butd.models import ModelConfig


def precision_for(accelerator: str) -> str:
    """bf16 mixed precision where a GPU runs the model, fp32 on CPUs (bf16 is ~100x slower there)."""
    import torch

    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if not on_gpu:
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def register_resolvers() -> None:
    """Every resolver the configs use; the entry points import this module before Hydra runs."""
    from butd import naming

    if not OmegaConf.has_resolver("butd.precision"):
        OmegaConf.register_new_resolver("butd.precision", precision_for)
    naming.register_resolvers()  # run names, tags, sweep job folders (conf/hydra, conf/logger)


register_resolvers()


def model_config(node: Any) -> ModelConfig:
    """The validated model config; a bad key or value is a ConfigError naming it."""
    from butd.models import ModelConfig

    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    try:
        return ModelConfig.from_dict(values)
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from err


def model_dict(cfg: ModelConfig) -> dict[str, Any]:
    return asdict(cfg)


def resolve_ckpt_path(ckpt_path: str | None, *, log_dir: str | Path, task_name: str) -> str | None:
    """`last` means the newest `last.ckpt` among this task's earlier runs; a path must exist."""
    if ckpt_path is None:
        return None
    if str(ckpt_path) == "last":
        found = sorted(
            Path(log_dir, task_name).glob("**/checkpoints/last.ckpt"),
            key=lambda p: p.stat().st_mtime,
        )
        if not found:
            raise ConfigError(
                f"ckpt_path=last: no checkpoints/last.ckpt under {Path(log_dir, task_name)}; "
                "give the checkpoint's path instead"
            )
        return str(found[-1])
    if not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: no such file")
    return str(ckpt_path)
