"""`compile=true` in a real fit: one training graph and one evaluation graph, whatever the batch."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
from hydra.utils import instantiate
from torch._dynamo.testing import CompileCounter

from butd.train import build
from butd.training.validate import validate_train_config
from tests.conftest import TINY_ADAPTIVE, TINY_DATA


class GraphsCompiled(pl.Callback):
    """How many graphs the backend has compiled after the sanity check's validation batches,
    after the first training batch, and at the end of each training epoch."""

    def __init__(self, backend: CompileCounter) -> None:
        self.backend = backend
        self.after_sanity = self.after_first_step = -1
        self.per_epoch: list[int] = []

    def on_sanity_check_end(self, trainer, pl_module):
        self.after_sanity = self.backend.frame_count

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 1:
            self.after_first_step = self.backend.frame_count

    def on_train_epoch_end(self, trainer, pl_module):
        self.per_epoch.append(self.backend.frame_count)


@pytest.mark.slow
@pytest.mark.parametrize("adaptive", [False, True])
def test_compiled_fit_compiles_train_and_eval_graphs_once(tiny_cfg, adaptive):
    """Batches of 24 leave a smaller last batch in training and in validation; with adaptive boxes
    each batch also pads to its own width. None of them compiles a new graph."""
    overrides = ["compile=true", "model.num_hid=16", "data.batch_size=24", "trainer.max_epochs=3"]
    if adaptive:
        overrides += TINY_ADAPTIVE[len(TINY_DATA) :]
    cfg = tiny_cfg(overrides)
    module, datamodule = build(validate_train_config(cfg))
    backend = CompileCounter()
    module.compile_backend = backend
    graphs = GraphsCompiled(backend)
    trainer = instantiate(cfg.trainer, callbacks=[graphs], logger=False, enable_checkpointing=False)
    trainer.fit(module, datamodule=datamodule)
    # dynamo leaves the GRU eager (cuDNN's kernel): each graph is compiled in the pieces around it
    pieces = graphs.after_sanity
    assert pieces > 0
    assert graphs.after_first_step == 2 * pieces, vars(graphs)  # the training graph, as many pieces
    # the smaller last batches of training and validation, the batch widths, later epochs: nothing new
    assert graphs.per_epoch == [2 * pieces] * 3, vars(graphs)
