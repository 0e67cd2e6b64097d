"""`butd.report` on run folders laid out as Hydra and `butd.train` leave them."""

import csv
import json
import math
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from butd.report import main


def make_run(
    sweep: Path,
    name: str,
    overrides: list[str],
    scores: list[float] | None,
    *,
    params: int = 1000,
    extra: dict[str, float] | None = None,
    failure: str | None = None,
) -> Path:
    """A job folder: `.hydra/overrides.yaml`, and metrics.json (with `scores` per epoch) or failure.json."""
    run = sweep / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (run / ".hydra" / "config.yaml").write_text("seed: 1111\n")
    if failure:
        (run / "failure.json").write_text(json.dumps({"error": "ConfigError", "message": failure}))
    if scores is not None:
        history = [
            {
                "epoch": e,
                "val/score": s,
                "epoch_seconds": 2.0 + e,
                "train/questions_per_s": 100.0,
                **(extra or {}),
            }
            for e, s in enumerate(scores)
        ]
        best = max(range(len(scores)), key=scores.__getitem__)
        metrics = {
            "val/score": scores[best],
            "best_epoch": best,
            "num_parameters": params,
            "history": history,
        }
        (run / "metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.fixture()
def sweep(tmp_path) -> Path:
    sweep = tmp_path / "ablation" / "multiruns" / "2026-01-01"
    common = ["experiment=ablation_activation", "paths.data_dir=/data", "trainer.max_epochs=3"]
    make_run(sweep, "0_a", [*common, "model.activation=relu", "seed=1"], [70.0, 80.0, 79.0], params=10)
    make_run(sweep, "1_b", [*common, "model.activation=relu", "seed=2"], [71.0, 78.0, 82.0], params=10)
    make_run(sweep, "2_c", [*common, "model.activation=glu", "seed=1"], [72.0, 85.0, 84.0], params=20)
    make_run(
        sweep, "3_d", [*common, "model.activation=swish", "seed=1"], None, failure="bad activation\nmore"
    )
    unfinished = make_run(sweep, "4_e", [*common, "model.activation=gated_tanh", "seed=1"], None)
    (unfinished / "csv").mkdir()
    (unfinished / "csv" / "metrics.csv").write_text("epoch,val/score,train/loss\n0,,3.0\n0,55.5,\n")
    return sweep


def test_one_row_per_configuration_with_mean_and_std_over_seeds(sweep, capsys):
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert [r["model.activation"] for r in rows] == ["relu", "glu"]
    relu, glu = rows
    assert relu["n_seeds"] == "2" and relu["seeds"] == "1 2" and glu["n_seeds"] == "1"
    assert float(relu["val/score mean"]) == pytest.approx(81.0)  # the best epochs: 80 and 82
    assert float(relu["val/score std"]) == pytest.approx(math.sqrt(2))
    assert float(glu["val/score mean"]) == 85.0 and glu["val/score std"] == ""
    assert relu["num_parameters"] == "10" and float(relu["epoch_seconds"]) == pytest.approx(3.0)

    # the printed table is the markdown one; common settings are not columns
    # 3 epochs cannot meet the convergence rule (5 epochs without gain): no row is called the best
    assert (
        "| relu | 2 | no (0/2) | 1, 2 | 81.00 ± 1.41 |" in out and "| glu | 1 | no (0/1) | 1 | 85.00 |" in out
    )
    assert "**" not in out
    assert "experiment" not in out.splitlines()[0] and "VQA acc" not in out
    md = (sweep / "report.md").read_text()
    assert "experiment=ablation_activation, trainer.max_epochs=3" in md and "/data" not in md
    # failed and unfinished runs are listed with why
    assert "3_d` | failed | ConfigError: bad activation |" in md
    assert (
        "4_e` | unfinished | no metrics.json; the CSV log has 1 validated epochs, last val/score 55.50 |"
        in md
    )
    assert "2 runs not in the table" in out

    for png in ("learning_curves.png", "scores.png"):
        image = mpimg.imread(sweep / png)
        assert image.shape[0] > 200 and image.shape[1] > 500


def test_official_accuracy_columns_appear_when_the_runs_logged_them(tmp_path, capsys):
    sweep = tmp_path / "s"
    acc = {
        "val/vqa_acc": 60.0,
        "val/vqa_acc/yes_no": 80.0,
        "val/vqa_acc/number": 40.0,
        "val/vqa_acc/other": 50.0,
    }
    make_run(sweep, "0_a", ["model.num_hid=256"], [50.0, 55.0], extra=acc)
    make_run(sweep, "1_b", ["model.num_hid=512"], [52.0, 51.0], extra={**acc, "val/vqa_acc": 62.0})
    assert main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "| VQA acc | yes/no | number | other |" in header
    rows = list(csv.DictReader((tmp_path / "out" / "report.csv").open()))
    assert [float(r["val/vqa_acc mean"]) for r in rows] == [60.0, 62.0]
    assert not (sweep / "report.md").exists()


def test_no_finished_runs_says_what_it_looked_for(tmp_path, capsys):
    sweep = tmp_path / "s"
    make_run(sweep, "0_a", ["model.activation=swish"], None, failure="bad activation")
    assert main([str(sweep)]) == 1
    err = capsys.readouterr().err
    assert (
        "no finished runs" in err and "metrics.json" in err and "1 failed" in err and "bad activation" in err
    )

    assert main([str(tmp_path / "s" / "0_a" / ".hydra")]) == 1
    assert "looked for run folders holding .hydra/overrides.yaml" in capsys.readouterr().err


def test_bad_arguments_are_usage_errors(tmp_path, sweep):
    with pytest.raises(SystemExit) as missing:
        main([str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit) as several:
        main([str(sweep), str(sweep)])
    assert missing.value.code == several.value.code == 2


def test_test_split_columns_appear_beside_the_holdout_score(tmp_path, capsys):
    sweep = tmp_path / "s"
    for name, method, test in (("0_a", "none", 30.0), ("1_b", "lmh", 45.0)):
        run = make_run(sweep, name, [f"debias={method}"], [80.0, 78.0])
        metrics = json.loads((run / "metrics.json").read_text())
        metrics.update({"test/vqa_acc": test, "test/vqa_acc/yes_no": test + 10, "test/vqa_acc/other": 20.0})
        (run / "metrics.json").write_text(json.dumps(metrics))
    assert main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    assert "| best val/score | test VQA acc | test yes/no | test other |" in capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "out" / "report.csv").open()))
    assert [(r["debias"], float(r["test/vqa_acc mean"])) for r in rows] == [("none", 30.0), ("lmh", 45.0)]


def test_a_debias_study_reports_its_diagnostics(tmp_path):
    sweep = tmp_path / "s"
    diag = {"val/diag/prior_top": 20.0, "val/diag/prior_top/yes_no": 0.0, "val/diag/prior_top/other": 30.0}
    make_run(sweep, "0_a", ["debias=none", "seed=1"], [80.0, 78.0], extra=diag)
    gate = {"val/diag/gate": 4.0, "val/diag/gate/yes_no": 6.0, "val/diag/gate/number": 3.0}
    make_run(sweep, "1_b", ["debias=lmh", "seed=1"], [40.0, 41.0], extra={**diag, **gate})
    seed2 = {**diag, **gate, "val/diag/gate": 5.0}
    make_run(sweep, "2_c", ["debias=lmh", "seed=2"], [40.0, 42.0], extra=seed2)
    assert main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Diagnostics" in report
    most = "answers the question type's most frequent training answer (%)"
    assert f"| debias=none | {most} | 20.00 | 0.00 | - | 30.00 |" in report
    assert "| debias=lmh | Learned-Mixin gate g | 4.50 | 6.00 | 3.00 | - |" in report  # mean of 2 seeds
    assert mpimg.imread(tmp_path / "out" / "diagnostics.png").shape[0] > 100
