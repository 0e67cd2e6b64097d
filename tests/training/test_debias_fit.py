"""Debias methods in real Lightning runs on a tiny set in VQA-CP v2's file format: every method
trains, the test split is evaluated once into metrics.json, and debias=none is the reference step."""

from __future__ import annotations

import json
import math

import pytest
import pytorch_lightning as pl
import torch

from butd.config.debias import DEBIAS_METHODS
from butd.errors import UserError
from butd.train import build, train
from butd.training.metrics import vqa_bce_loss
from butd.training.validate import validate_train_config
from tests.conftest import TINY_CP, TINY_DATA, compose_train


def _cp_cfg(raw, tmp_path, *overrides: str):
    return compose_train(
        [
            *TINY_CP,
            f"data.raw_dir={raw}",
            f"data.cache_dir={tmp_path.parent / 'cp_cache'}",
            "data.auto_prepare=true",
            "data.feature_store=ram",
            "trainer.accelerator=cpu",
            "logger=csv",
            "model.num_hid=32",
            *overrides,
        ],
        data_dir=tmp_path / "data",
        output_dir=tmp_path / "run",
    )


@pytest.mark.parametrize("method", [*DEBIAS_METHODS.names, "gge_q_iter", "gge_dq_iter"])
def test_every_method_trains_a_batch_on_vqacp2(tiny_cp_raw, tmp_path, method):
    cfg = _cp_cfg(tiny_cp_raw, tmp_path, f"debias={method}", "+trainer.fast_dev_run=true")
    summary = train(cfg)
    assert summary["test/vqa_acc"] >= 0  # the test split ran, with the final weights


def test_debias_none_is_the_reference_step(tiny_cfg, tmp_path):
    cfg = tiny_cfg(["model.num_hid=32"])
    module, datamodule = build(validate_train_config(cfg))
    datamodule.setup("fit")
    assert list(module.debias.parameters()) == []  # nothing new to train or to checkpoint
    assert set(module.state_dict()) == {f"model.{k}" for k in module.model.state_dict()}
    batch = next(iter(datamodule.train_dataloader()))
    torch.manual_seed(0)
    _, loss = module._training_loss(batch)
    torch.manual_seed(0)
    expected = vqa_bce_loss(module(batch.v, batch.q, batch.b, batch.v_mask), batch.target)
    assert torch.equal(loss, expected)


def test_a_method_that_needs_question_types_stops_before_training(tiny_data_dir, tmp_path):
    """Annotations without question_type (a split without annotations is refused earlier still,
    by the data config)."""
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(tiny_data_dir / "synthetic" / "raw", raw)
    for split in ("train2014", "val2014"):
        path = raw / f"v2_mscoco_{split}_annotations.json"
        content = json.loads(path.read_text())
        for a in content["annotations"]:
            del a["question_type"]
        path.write_text(json.dumps(content))
    cfg = compose_train(
        [*TINY_DATA, "trainer.accelerator=cpu", "logger=csv", "debias=lmh", f"data.raw_dir={raw}",
         f"data.cache_dir={tmp_path / 'cache'}", "data.auto_prepare=true"],
        data_dir=tiny_data_dir,
        output_dir=tmp_path / "run",
    )  # fmt: skip
    with pytest.raises(UserError, match="debias=lmh needs each training question's question_type"):
        build(validate_train_config(cfg))


@pytest.mark.slow
def test_selection_on_the_holdout_and_test_once_into_metrics_json(tiny_cp_raw, tmp_path):
    summary = train(_cp_cfg(tiny_cp_raw, tmp_path, "debias=lmh", "trainer.max_epochs=2"))
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in (
        "test/vqa_acc",
        "test/vqa_acc/yes_no",
        "test/vqa_acc/number",
        "test/vqa_acc/other",
        "test/score",
    ):
        assert record[key] == pytest.approx(summary[key])
    assert record["test_checkpoint"] == record["best_checkpoint"]
    assert "warnings" not in record


@pytest.mark.slow
def test_selecting_on_test_is_warned_about_and_recorded(tiny_cp_raw, tmp_path):
    train(_cp_cfg(tiny_cp_raw, tmp_path, "data.val_split=test", "trainer.max_epochs=1"))
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "checkpoint is selected on the test set" in record["warnings"][0]


class StepProbe(pl.Callback):
    """Records, before each optimizer step, the batch, the total gradient norm after clipping, the
    norm clipping saw (`grad_norm`) and whether the main model's gradients are all zero."""

    steps: list[dict] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._batch = (trainer.current_epoch, batch_idx)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        model = [p.grad for p in pl_module.model.parameters() if p.grad is not None]
        StepProbe.steps.append(
            {
                "batch": self._batch,
                "norm": torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item(),
                "clip_saw": None if pl_module.grad_norm is None else pl_module.grad_norm.item(),
                "model_still": all(not g.any() for g in model),
                "global_step": trainer.global_step,
            }
        )


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gge_q", "gge_dq", "gge_q_iter", "gge_dq_iter"])
def test_gge_branch_methods_fit_an_epoch(tiny_cp_raw, tmp_path, method):
    """One epoch: tog steps once per batch (Lightning clips it, after this hook); iter twice (the
    branch's step, in which the main model's gradients are zero, then the model's), each clipped at
    0.25 before the hook, and counts both in global_step."""
    StepProbe.steps = []
    probe = [f"+callbacks.probe._target_={__name__}.StepProbe"]
    summary = train(_cp_cfg(tiny_cp_raw, tmp_path, f"debias={method}", "trainer.max_epochs=1", *probe))
    steps = StepProbe.steps
    batches = sorted({s["batch"] for s in steps})
    per_batch = 2 if method.endswith("_iter") else 1
    assert len(steps) == per_batch * len(batches) and summary["history"][0]["step"] == len(steps)
    assert [s["global_step"] for s in steps] == list(range(len(steps)))
    if per_batch == 2:
        assert all(s["norm"] <= 0.25 * (1 + 1e-5) for s in steps)  # every step clipped
        assert any(s["clip_saw"] > 0.25 for s in steps)  # and clipping was needed
        assert all(s["model_still"] for s in steps[0::2])  # the branch's step: its loss only
        assert not any(s["model_still"] for s in steps[1::2])
    assert math.isfinite(summary["history"][0]["train/loss_epoch"]) and summary["test/vqa_acc"] >= 0
