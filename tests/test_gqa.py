"""GQA end to end on the tiny GQA-format set: train logs the official GQA metrics per epoch (val)
and once at the end (testdev), evaluate reproduces them from the checkpoint, predict writes
GQA's predictions file, report shows them; and the command line as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from rich.console import Console

from butd.vqa.gqa import GQATables
from tests.conftest import REPO, compose_job, compose_train
from tests.gqa_data import TINY_GQA, gqa_config

HEADLINE = ("accuracy", "binary", "open", "consistency", "validity", "plausibility", "distribution")


@pytest.fixture(scope="module")
def gqa_run(tmp_path_factory):
    """A BUTD model (width 32) trained 1 epoch on the tiny GQA-format set."""
    from butd.train import train

    data_dir = tmp_path_factory.mktemp("gqa_data")
    out = tmp_path_factory.mktemp("gqa_run")
    cfg = compose_train(
        [*TINY_GQA, "trainer.accelerator=cpu", "logger=csv", "model.num_hid=32", "trainer.max_epochs=1"],
        data_dir=data_dir,
        output_dir=out,
    )
    train(cfg)
    ckpt = next((out / "checkpoints").glob("best-*.ckpt"))
    return {
        "data": data_dir,
        "dir": out,
        "ckpt": ckpt,
        "metrics": json.loads((out / "metrics.json").read_text()),
    }


def test_training_logs_the_gqa_metrics_of_val_per_epoch_and_of_testdev_once(gqa_run):
    metrics = gqa_run["metrics"]
    last = metrics["history"][-1]
    assert all(f"val/gqa/{name}" in last for name in HEADLINE)
    assert any(k.startswith("val/gqa/structural/") for k in last)
    assert any(k.startswith("val/gqa/steps/") for k in last)
    # every question of the balanced file is balanced: GQA's accuracy is the exact-match accuracy
    assert last["val/gqa/accuracy"] == pytest.approx(last["val/vqa_acc"], abs=1e-3)
    assert last["val/gqa/accuracy"] == pytest.approx(last["val/score"], abs=1e-3)
    # testdev has no choices file: no validity or plausibility, as in the release
    assert "test/gqa/accuracy" in metrics and "test/gqa/validity" not in metrics
    assert metrics["test/gqa/accuracy"] == pytest.approx(metrics["test/score"], abs=1e-3)


def test_evaluate_and_predict_reproduce_the_logged_metrics_and_write_gqa_predictions(gqa_run, tmp_path):
    from butd.evaluate import evaluate
    from butd.predict import predict

    args = [f"ckpt_path={gqa_run['ckpt']}", "trainer.accelerator=cpu"]
    cfg = compose_job("evaluate", [*args, "split=val"], data_dir=gqa_run["data"], output_dir=tmp_path / "e")
    metrics = evaluate(cfg)
    last = gqa_run["metrics"]["history"][-1]
    for name, value in metrics["gqa"].items():
        assert value == pytest.approx(last[f"val/gqa/{name}"], abs=1e-3), name
    cfg = compose_job(
        "predict", [*args, "split=testdev"], data_dir=gqa_run["data"], output_dir=tmp_path / "p"
    )
    predict(cfg, Console(quiet=True))
    written = json.loads((tmp_path / "p" / "testdev_predictions.json").read_text())
    raw = json.loads(
        (gqa_config(gqa_run["data"]).raw_path / "questions1.2/testdev_balanced_questions.json").read_text()
    )
    assert [p["questionId"] for p in written] == list(raw)
    assert set(written[0]) == {"questionId", "prediction"}
    tables = GQATables.read(gqa_config(gqa_run["data"]).cache_path / "testdev.h5")
    right = sum(p["prediction"] == a for p, a in zip(written, tables.answer, strict=True))
    assert 100 * right / len(written) == pytest.approx(gqa_run["metrics"]["test/gqa/accuracy"], abs=1e-3)


def test_report_shows_the_gqa_columns(gqa_run, tmp_path):
    from butd.reporting.runs import read_run
    from butd.reporting.tables import Table

    # the command line's record, which Hydra writes beside a CLI run (this one ran in-process)
    (gqa_run["dir"] / ".hydra").mkdir(exist_ok=True)
    (gqa_run["dir"] / ".hydra" / "overrides.yaml").write_text("- data=synthetic_gqa\n")
    table = Table.of([read_run(gqa_run["dir"])])
    markdown = table.markdown()
    for name in ("GQA accuracy", "GQA consistency", "GQA validity", "GQA distribution", "test GQA accuracy"):
        assert name in markdown


@pytest.mark.slow
def test_the_train_command_on_synthetic_gqa(tmp_path):
    """`python -m butd.train data=synthetic_gqa` as a user runs it (tiny, 1 epoch)."""
    run = subprocess.run(
        [sys.executable, "-m", "butd.train", *TINY_GQA, "trainer.max_epochs=1", "model.num_hid=32",
         "logger=csv", "trainer=cpu", f"paths.data_dir={tmp_path}/data", f"paths.log_dir={tmp_path}/logs"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "test split testdev, with " in run.stdout and " gqa/accuracy " in run.stdout
    assert "Traceback" not in run.stderr


def test_gqa_baseline_composes_with_openvqa_s_gqa_butd_settings(tmp_path):
    from butd.config.data import DataConfig
    from butd.training.validate import validate_train_config

    cfg = compose_train(["experiment=gqa_baseline"], data_dir=tmp_path, output_dir=tmp_path / "run")
    run = validate_train_config(cfg)
    data, model = run.data, run.model
    assert (data.name, data.format, data.boxes, data.num_boxes, data.batch_size) == (
        "gqa",
        "gqa",
        "adaptive",
        100,
        512,
    )
    assert (model.num_hid, model.output, model.use_spatial, model.att_dropout, model.classifier_dropout) == (
        1024, "softmax", True, 0.2, 0.5,
    )  # fmt: skip
    opt = cfg.optim.optimizer
    assert (opt.lr, list(opt.betas), opt.eps, cfg.optim.clip_grad_norm) == (0.002, [0.9, 0.999], 1e-9, 0.25)
    assert cfg.trainer.max_epochs == 13
    assert isinstance(DataConfig.from_dict(cfg.data), DataConfig)
    sub = compose_train(["data=gqa_submission"], data_dir=tmp_path, output_dir=tmp_path / "run").data
    sub = DataConfig.from_dict(sub)
    assert sub.prepare_splits == ["submission"] and sub.questions["submission"].endswith(
        "submission_all_questions.json"
    )


def test_predict_answers_the_submission_questions_from_a_cache_of_their_own(gqa_run, tmp_path):
    """data=gqa_submission's layout on the tiny set: the questions without answers, every one answered."""
    from butd.predict import predict

    data = [
        *TINY_GQA,
        "+data.questions.submission=questions1.2/submission_all_questions.json",
        "data.prepare_splits=[submission]",
        "data.test_split=null",
        f"data.cache_dir={gqa_run['data']}/synthetic_gqa/cache_submission",
    ]
    args = [f"ckpt_path={gqa_run['ckpt']}", "trainer.accelerator=cpu", "split=submission", *data]
    cfg = compose_job("predict", args, data_dir=gqa_run["data"], output_dir=tmp_path)
    predict(cfg, Console(quiet=True))
    written = json.loads((tmp_path / "submission_predictions.json").read_text())
    raw = gqa_config(gqa_run["data"]).raw_path / "questions1.2" / "submission_all_questions.json"
    questions = json.loads(raw.read_text())
    assert not any("answer" in q for q in questions.values())
    assert [p["questionId"] for p in written] == list(questions)
