"""The report's convergence marks, Δ intervals, refusals to compare, seeds needed and the panels."""

import csv
import json

import matplotlib.image as mpimg
import pytest

from butd.report import main
from butd.reporting.stats import difference
from tests.reporting.test_tables import make_run

# best epoch 3; converged (the default rule: patience 10, min_delta 0.1) from epoch 13
PLATEAU = [60.0, 70.0, 75.0, 76.0, 76.0, 75.9, 76.0, 75.8, 75.9, 76.0, 75.9, 75.8, 76.0, 75.9, 76.0]
RISING = [60.0 + 2.0 * i for i in range(15)]  # still climbing


def study(tmp_path, rows: dict[str, list[tuple[int, float]]], *, shape=PLATEAU, epochs: int = 15):
    """`trick=NAME` rows, one run per (seed, offset): the offset shifts the whole curve."""
    sweep = tmp_path / "study"
    i = 0
    for trick, runs in rows.items():
        for seed, offset in runs:
            run = make_run(
                sweep, f"{i}_{trick}", [f"trick={trick}", f"seed={seed}"], [s + offset for s in shape]
            )
            (run / ".hydra" / "config.yaml").write_text(
                f"seed: {seed}\ntrainer:\n  max_epochs: {epochs}\ndata:\n  name: synthetic\n"
            )
            i += 1
    return sweep


def test_converged_rows_get_paired_intervals_and_the_winner_is_bold(tmp_path, capsys):
    sweep = study(
        tmp_path,
        {
            "reference": [(1, 0.0), (2, 1.0), (3, -1.0)],
            "two_stream": [(1, 3.0), (2, 3.5), (3, 2.5)],  # +3 on every seed: the interval excludes 0
            "softmax": [(1, 1.0), (2, -1.0), (3, -1.2)],  # mixed: the interval contains 0
        },
    )
    assert main([str(sweep)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("| reference | 3 | yes (3/3) | 3, 3, 3 | 76.00 ± 1.00 | reference |")
    diff = difference({"1": 79.0, "2": 79.5, "3": 78.5}, {"1": 76.0, "2": 77.0, "3": 75.0})
    assert diff.method == "paired" and diff.low > 0
    interval = f"[{diff.low:+.2f}, {diff.high:+.2f}]"
    assert lines[3].startswith(
        f"| two_stream | 3 | yes (3/3) | 3, 3, 3 | **79.00 ± 0.50** | +3.00 {interval} |"
    )
    assert "| softmax | 3 | yes (3/3) |" in lines[4] and "ns |" in lines[4]
    md = (sweep / "report.md").read_text()
    assert "Data: synthetic, at most 15 epochs." in md
    assert "gained no more than 0.1 points over their last 10 epochs" in md
    assert "(applied to the history of runs that did not record it)" in md  # make_run records none
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert rows[1]["val/score delta method"] == "paired" and float(rows[1]["val/score delta low"]) > 0
    assert rows[0]["converged"] == "3" and rows[0]["best_epochs"] == "3 3 3"


def test_an_unconverged_best_row_is_marked_and_not_bold(tmp_path, capsys):
    sweep = study(tmp_path, {"reference": [(1, 0.0), (2, 0.5)]})
    rising = make_run(sweep, "9_rising", ["trick=gated_tanh", "seed=1"], RISING)
    (rising / ".hydra" / "config.yaml").write_text(
        "seed: 1\ntrainer:\n  max_epochs: 15\ndata:\n  name: synthetic\n"
    )
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "| gated_tanh | 1 | no (0/1) | 14 | 88.00 |" in out and "**" not in out
    assert "1 of 2 rows did not converge" in (sweep / "report.md").read_text()


def test_a_recorded_convergence_wins_over_the_history(tmp_path, capsys):
    sweep = study(tmp_path, {"reference": [(1, 0.0)]}, shape=RISING)
    record = next(sweep.glob("*/metrics.json"))
    metrics = json.loads(record.read_text())
    rule = {"monitor": "val/score", "patience": 1, "min_delta": 50.0}
    record.write_text(
        json.dumps({**metrics, "converged": True, "converged_epoch": 1, "convergence_rule": rule})
    )
    assert main([str(sweep)]) == 0
    assert "| all runs | 1 | yes (1/1) |" in capsys.readouterr().out
    assert "gained no more than 50 points over their last 1 epochs;" in (sweep / "report.md").read_text()


def test_runs_under_different_convergence_rules_are_each_judged_by_their_own_and_the_note_says_so(
    tmp_path, capsys
):
    sweep = study(tmp_path, {"reference": [(1, 0.0), (2, 0.5)], "softmax": [(1, 1.0), (2, 1.5)]})
    # one run stopped under patience 5 (converged at epoch 8 of its 9 recorded epochs)
    record = next(p for p in sweep.glob("*/metrics.json") if "softmax" in p.parent.name)
    metrics = json.loads(record.read_text())
    rule = {"monitor": "val/score", "patience": 5, "min_delta": 0.1}
    record.write_text(
        json.dumps({**metrics, "converged": True, "converged_epoch": 8, "convergence_rule": rule})
    )
    assert main([str(sweep)]) == 0
    md = (sweep / "report.md").read_text()
    assert (
        "Converged: the runs ran under different convergence rules, each judged by its own (1 run no more "
        "than 0.1 points over the last 5 epochs; 3 runs no more than 0.1 points over the last 10 epochs)"
    ) in md
    assert "| softmax | 2 | yes (2/2) |" in capsys.readouterr().out


def test_runs_with_other_epoch_caps_get_no_delta_column(tmp_path, capsys):
    sweep = study(tmp_path, {"reference": [(1, 0.0)], "softmax": [(1, 1.0)]})
    longer = next(p for p in sweep.iterdir() if p.name.endswith("softmax"))
    (longer / ".hydra" / "config.yaml").write_text("seed: 1\ntrainer:\n  max_epochs: 60\n")
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "note: the runs differ in trainer.max_epochs (15, 60) and data.name (None, synthetic) without it "
        "being an axis of the table: no Δ column; report such runs apart"
    )
    assert "Δ" not in out[1]


def test_a_failed_reference_row_is_named_and_nothing_is_compared_with_another_row(tmp_path, capsys):
    sweep = study(tmp_path, {"softmax": [(1, 0.0)], "two_stream": [(1, 1.0)]})
    make_run(sweep, "8_ref", ["trick=reference", "seed=1"], None, failure="out of memory")
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("note: the reference row trick=reference has no finished run (1 failed)")
    assert "Δ" not in out[1]


def test_seeds_needed_from_the_measured_spread(tmp_path, capsys):
    sweep = study(
        tmp_path, {"reference": [(1, 0.0), (2, 1.0), (3, -1.0)], "softmax": [(1, 1.0), (2, -1.0), (3, -1.2)]}
    )
    assert main([str(sweep), "--seeds-needed", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "against the reference row, 1 points of val/score (5% two-sided test, 80% power):" in out
    assert "trick=softmax: " in out and " seeds per row (SD " in out and "per-seed differences)" in out
    assert "## Seeds needed" in (sweep / "report.md").read_text()
    with pytest.raises(SystemExit) as usage:
        main([str(sweep), "--seeds-needed", "0"])
    assert usage.value.code == 2


def test_the_learning_curves_stay_readable_at_eleven_rows(tmp_path):
    names = ["reference", *(f"trick{i}" for i in range(10))]
    acc = {"val/vqa_acc/yes_no": 80.0, "val/vqa_acc/number": 40.0, "val/vqa_acc/other": 50.0}
    sweep = tmp_path / "eleven"
    for i, name in enumerate(names):
        make_run(sweep, f"{i}_{name}", [f"trick={name}", "seed=1"], [s + i for s in PLATEAU], extra=acc)
    assert main([str(sweep)]) == 0
    image = mpimg.imread(sweep / "learning_curves.png")
    # four panels (val/score and the three answer types) in two columns, the legend below them
    assert image.shape[1] >= 1400 and image.shape[0] > image.shape[1] * 0.6
