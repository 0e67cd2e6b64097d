"""VQAModule and the Predictor with batches whose images have a variable number of boxes.

Such batches carry `v_mask` [batch, k] bool (False for padding, the boxes beyond an image's own
count); the padded boxes must not change anything.
"""

from dataclasses import fields, replace

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from butd.data.batch import VQABatch
from butd.evaluation.inference import Predictor
from butd.training.metrics import vqa_bce_loss
from butd.training.module import VQAModule

NTOKEN, V_DIM, NUM_ANS, T = 25, 10, 6, 5
pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log")

OPTIMIZER = {"_target_": "torch.optim.Adamax", "_partial_": True, "lr": 2e-3}


def _module(**model) -> VQAModule:
    torch.manual_seed(0)
    cfg = {"num_hid": 16, "emb_dim": 8, **model}
    return VQAModule(model=cfg, ntoken=NTOKEN, v_dim=V_DIM, num_answers=NUM_ANS, optimizer=OPTIMIZER)


def _batch(counts: list[int], k: int) -> VQABatch:
    """Images with `counts[i]` real boxes, padded to k with large random values in v and b."""
    g = torch.Generator().manual_seed(1)
    n = len(counts)
    mask = torch.arange(k)[None] < torch.tensor(counts)[:, None]
    v = torch.rand(n, k, V_DIM, generator=g)
    b = torch.rand(n, k, 6, generator=g)
    v[~mask] = 1e3 * torch.randn(int((~mask).sum()), V_DIM, generator=g)
    b[~mask] = 1e3 * torch.randn(int((~mask).sum()), 6, generator=g)
    target = torch.rand(n, NUM_ANS, generator=g) * (torch.rand(n, NUM_ANS, generator=g) < 0.3)
    return VQABatch(
        v=v,
        b=b,
        v_mask=mask,
        q=torch.randint(0, NTOKEN + 1, (n, T), generator=g),
        question_id=torch.arange(n) + 100,
        target=target,
    )


def _without_padding(batch: VQABatch, k: int, rows=slice(None)) -> VQABatch:
    """The questions `rows` of the batch with only their first k boxes and no mask."""
    kept = {f.name: getattr(batch, f.name) for f in fields(batch) if getattr(batch, f.name) is not None}
    out = VQABatch(**{name: value[rows] for name, value in kept.items() if name != "v_mask"})
    out.v, out.b = out.v[:, :k], out.b[:, :k]
    return out


class _Logits:
    """Records the logits the module's model returns."""

    def __init__(self, module: VQAModule) -> None:
        self.seen: list[torch.Tensor] = []
        module.model.register_forward_hook(lambda m, i, out: self.seen.append(out.detach()))

    def last(self) -> torch.Tensor:
        return self.seen[-1]


@pytest.mark.parametrize("model", [{}, {"attention": "concat"}, {"use_spatial": True}])
def test_training_and_validation_steps_ignore_the_padded_boxes(model) -> None:
    module = _module(**model).eval()  # dropout off
    logits = _Logits(module)
    batch = _batch([4, 4, 4], k=7)
    with torch.no_grad():
        loss = module.training_step(batch, 0)
        train_logits = logits.last()
        module.validation_step(batch, 0)
        val_logits = logits.last()
        plain = _without_padding(batch, 4)
        plain_loss = module.training_step(plain, 0)
        plain_logits = logits.last()
        module.validation_step(plain, 0)
    torch.testing.assert_close(loss, plain_loss)
    torch.testing.assert_close(train_logits, plain_logits)
    torch.testing.assert_close(val_logits, logits.last())
    torch.testing.assert_close(val_logits, train_logits)


@pytest.mark.parametrize("model", [{}, {"use_spatial": True, "activation": "gated_tanh"}])
def test_images_with_different_box_counts_each_answer_as_if_alone(model) -> None:
    module = _module(**model).eval()
    logits = _Logits(module)
    counts = [3, 7, 1, 5]
    batch = _batch(counts, k=7)
    with torch.no_grad():
        loss = module.training_step(batch, 0)
        batched = logits.last()
        alone = []
        for i, n in enumerate(counts):
            module.validation_step(_without_padding(batch, n, rows=slice(i, i + 1)), 0)
            alone.append(logits.last())
    torch.testing.assert_close(batched, torch.cat(alone))
    torch.testing.assert_close(loss, vqa_bce_loss(torch.cat(alone), batch.target))


def test_a_batch_without_v_mask_is_unchanged() -> None:
    module = _module().eval()
    batch = _without_padding(_batch([6, 6], k=6), 6)
    with torch.no_grad():
        expected = vqa_bce_loss(module.model(batch.v, batch.q, batch.b), batch.target)
        assert torch.equal(module.training_step(batch, 0), expected)
        # an all-true mask gives the same answers
        masked = replace(batch, v_mask=torch.ones(2, 6, dtype=torch.bool))
        torch.testing.assert_close(module.training_step(masked, 0), expected)


def test_fit_and_predict_with_masked_batches(tmp_path) -> None:
    """A Lightning fit, validation and predict with v_mask in every batch: finite, and the
    predictions equal those on the unpadded questions."""
    module = _module(use_spatial=True)
    batches = [_batch([2, 5, 3, 5], k=5), _batch([1, 4, 4, 2], k=4)]
    loader = DataLoader(batches, batch_size=None)  # each item is a whole batch
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    assert torch.isfinite(trainer.callback_metrics["val/loss"])

    module.eval()
    out = trainer.predict(Predictor(module.model), dataloaders=loader)
    labels = torch.cat([o["label"] for o in out])
    with torch.no_grad():
        alone = [
            module.model(row.v, row.q, row.b).argmax(1)
            for batch in batches
            for i, n in enumerate(batch.v_mask.sum(1).tolist())
            for row in [_without_padding(batch, n, rows=slice(i, i + 1))]
        ]
    assert torch.equal(labels, torch.cat(alone))
