"""The resolvers the configs use: `${butd.precision:...}` (conf/trainer) and the run, tag and job
folder names of `butd.config.naming` (conf/logger, conf/hydra)."""

from __future__ import annotations

import logging

from omegaconf import OmegaConf

log = logging.getLogger(__name__)
#: the precision fallback is said once per process, however often the config is resolved
_said: set[str] = set()


def precision_for(accelerator: str) -> str:
    """bf16 mixed precision where a GPU runs the model, fp32 on CPUs (bf16 is ~100x slower there)."""
    import torch

    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if not on_gpu:
        return "32-true"
    if torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    if not _said:
        _said.add("16-mixed")
        name = torch.cuda.get_device_name()
        log.warning(f"{name} has no bf16 support: training in 16-mixed (float16 with a gradient scaler)")
    return "16-mixed"


def register_resolvers() -> None:
    """Every resolver the configs use (idempotent); `butd.config.register` calls it."""
    from butd.config import naming

    if not OmegaConf.has_resolver("butd.precision"):
        OmegaConf.register_new_resolver("butd.precision", precision_for)
    naming.register_resolvers()
