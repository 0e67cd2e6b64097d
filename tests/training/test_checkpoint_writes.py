"""The checkpoints of an epoch cost one write: after an improving epoch, last.ckpt is a link to the best."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from butd.train import _instantiate_group, build
from butd.training.checkpoints import trainer_setup


class FilesAfterEachEpoch(pl.Callback):
    """At the start of each epoch (and at the end), the previous epoch's checkpoint files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen: list[tuple[int, int, bool]] = []  # (epoch, best epoch, last is the best's file)

    def _look(self, trainer: pl.Trainer, epoch: int) -> None:
        (best,) = self.folder.glob("best-*.ckpt")
        best_epoch = int(re.search(r"epoch(\d+)", best.name).group(1))
        self.seen.append((epoch, best_epoch, best.samefile(self.folder / "last.ckpt")))

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch > 0:
            self._look(trainer, trainer.current_epoch - 1)

    def on_train_end(self, trainer, pl_module):
        self._look(trainer, trainer.current_epoch - 1)


@pytest.mark.slow
def test_an_improving_epoch_writes_once_and_later_writes_leave_the_best_alone(tiny_cfg):
    cfg = tiny_cfg(["model.num_hid=16", "trainer.max_epochs=6", "optim.optimizer.lr=0.05"])
    module, datamodule = build(cfg)
    files = FilesAfterEachEpoch(Path(cfg.paths.output_dir) / "checkpoints")
    kwargs, _ = trainer_setup(cfg)
    callbacks = [*_instantiate_group(cfg.callbacks), files]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=False, **kwargs)
    trainer.fit(module, datamodule=datamodule)
    assert [e for e, _, _ in files.seen] == list(range(6))
    for epoch, best_epoch, linked in files.seen:
        assert linked == (best_epoch == epoch), files.seen
    links = [linked for *_, linked in files.seen]
    assert any(links) and not all(links), files.seen  # both kinds of epoch happened
    # last.ckpt holds the last epoch's state whether or not it is the best's file
    last = torch.load(files.folder / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 5
