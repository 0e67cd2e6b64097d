"""Loggers as Lightning ships them, less what makes every run print a warning."""

from __future__ import annotations

from typing import Any

from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger


class WandbLogger(_LightningWandbLogger):
    """Lightning's W&B logger without the `anonymous=None` it always hands to `wandb.init`:
    W&B warns that the setting has no effect whenever it is given, even as None."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
