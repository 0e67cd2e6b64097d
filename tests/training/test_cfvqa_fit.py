"""CF-VQA end to end: a real one-epoch fit on a tiny set in VQA-CP v2's format, whose checkpoint
`butd.evaluate` and `butd.predict` (real subprocesses, no extra flag) answer with the total
indirect effect, as the end-of-training test did."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import pytest
import torch

from butd.data.datamodule import VQABatches
from butd.evaluation.checkpoint import load_checkpoint
from butd.evaluation.inference import split_loader
from butd.train import train
from tests.training.test_debias_fit import _cp_cfg


def _cli(module: str, *args: str, cwd) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, "-m", module, *args, "trainer=cpu"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.mark.slow
def test_a_cfvqa_checkpoint_answers_with_its_counterfactual_inference(tiny_cp_raw, tmp_path):
    summary = train(_cp_cfg(tiny_cp_raw, tmp_path, "debias=cfvqa", "trainer.max_epochs=1"))
    epoch = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"][-1]
    for key in ("val/diag/constant", "val/diag/tie_changed/yes_no", "train/diag/prior_top", "val/vqa_acc"):
        assert key in epoch, sorted(epoch)
    assert 0.0 <= epoch["val/diag/prior_top/other"] <= 100.0
    ckpt_path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt = load_checkpoint(ckpt_path)
    assert ckpt.module.hparams["debias"]["name"] == "cfvqa"
    assert ckpt.module.debias.constant.item() != 0.0  # c learned from the KL term

    # the test split's answers worked out here from the model's parts: argmax of TIE
    info_root = tmp_path.parent / "cp_cache"
    (split_file,) = info_root.rglob("test.h5")
    dataset = VQABatches(split_file, num_answers=len(ckpt.answers))
    model, debias = ckpt.module.model, ckpt.module.debias
    tie, plain = [], []
    with torch.no_grad():
        for batch in split_loader(dataset, batch_size=64, num_workers=0):
            logits, _, q_emb = model.forward_parts(batch.v, batch.q, batch.b, batch.v_mask)
            v_mean = batch.v.float().mean(1)  # every image of the tiny set has its 6 boxes
            q_pred, v_pred = debias.q_branch(q_emb), debias.v_branch(v_mean)
            te = torch.nn.functional.logsigmoid(logits + q_pred + v_pred)
            nde = torch.nn.functional.logsigmoid(q_pred + 2 * debias.constant)
            tie += (te - nde).argmax(1).tolist()
            plain += logits.argmax(1).tolist()
    assert tie != plain  # the counterfactual inference changes answers

    run = _cli("butd.evaluate", f"ckpt_path={ckpt_path}", "split=test", cwd=tmp_path)
    (out,) = (tmp_path / "outputs" / "evaluate" / "runs").glob("*/predictions.json")
    predictions = json.loads(out.read_text())
    with h5py.File(split_file) as f:
        order = {int(q): i for i, q in enumerate(f["questions/question_id"][:])}
    got = [None] * len(order)
    for p in predictions:
        got[order[p["question_id"]]] = ckpt.answers.index(p["answer"])
    assert got == tie
    # the end-of-training test (1 epoch: the selected checkpoint is the last) scored the same answers
    metrics = json.loads((out.parent / "metrics.json").read_text())
    assert metrics["official"]["overall"] == pytest.approx(summary["test/vqa_acc"], abs=0.01)
    assert "VQA accuracy" in run.stdout

    with h5py.File(split_file) as f:
        image_id = int(f["images/image_id"][0])
    question = "question='what is it?'"
    run = _cli("butd.predict", f"ckpt_path={ckpt_path}", f"image_id={image_id}", question, cwd=tmp_path)
    assert "TIE" in run.stdout and "total indirect effect" in " ".join(run.stdout.split())
    (answer,) = (tmp_path / "outputs" / "predict" / "runs").glob("*/answer.json")
    rows = json.loads(answer.read_text())["answers"]
    assert all(set(r) == {"answer", "tie"} for r in rows)
    assert [r["tie"] for r in rows] == sorted((r["tie"] for r in rows), reverse=True)
