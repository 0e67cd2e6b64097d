"""What RunStats adds to each epoch's record, and the objects ablation's box limit, in real fits."""

import json

import numpy as np
import torch

from butd.train import build, train
from butd.training.validate import validate_train_config


def test_history_carries_throughput_and_the_best_score_so_far(tiny_cfg):
    history = train(tiny_cfg(["model.num_hid=16", "trainer.max_epochs=4", "optim.optimizer.lr=0.02"]))[
        "history"
    ]
    scores = [r["val/score"] for r in history]
    assert [r["val/score_best"] for r in history] == list(np.maximum.accumulate(scores))
    assert all(r["train/questions_per_s"] > 0 for r in history)


def test_use_boxes_gives_the_model_the_first_k_boxes(tiny_cfg):
    _, full = build(validate_train_config(tiny_cfg()))
    _, first3 = build(validate_train_config(tiny_cfg(["data.use_boxes=3"])))
    for dm in (full, first3):
        dm.setup("fit")
    a, b = full.dataset("val")[[0, 5, 9]], first3.dataset("val")[[0, 5, 9]]
    assert a.v.shape[1] == 6 and b.v.shape[1] == 3
    assert torch.equal(a.v[:, :3], b.v) and torch.equal(a.b[:, :3], b.b)


def test_metrics_json_records_convergence_and_stop_ends_the_run_there(tiny_cfg, tmp_path):
    # min_delta 100: the rule (patience 1) holds from the second epoch on, whatever the scores
    rule = ["convergence.patience=1", "convergence.min_delta=100"]
    summary = train(tiny_cfg(["model.num_hid=16", "trainer.max_epochs=4", *rule, "convergence.stop=true"]))
    assert [r["epoch"] for r in summary["history"]] == [0, 1]  # stopped at epoch 1, under the cap of 4
    record = json.loads((tmp_path / "logs" / "train" / "runs" / "run" / "metrics.json").read_text())
    assert record["converged"] is True and record["converged_epoch"] == 1
    assert record["convergence_rule"] == {"monitor": "val/score", "patience": 1, "min_delta": 100.0}
    # the default rule (5 epochs without a gain of 0.1) cannot hold after 2 epochs
    assert train(tiny_cfg(["model.num_hid=16", "trainer.max_epochs=2"], run="b"))["converged"] is False
