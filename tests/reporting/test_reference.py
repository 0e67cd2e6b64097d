"""The report's reference view: the reference row first, a row per change, Δ columns."""

import csv

import pytest

from butd.report import main
from tests.reporting.test_tables import make_run

ACC = {"val/vqa_acc": 60.0}


@pytest.fixture()
def tricks(tmp_path):
    sweep = tmp_path / "tips_and_tricks" / "multiruns" / "2026-01-01"
    common = ["experiment=[quickstart,tips_and_tricks]", "data=synthetic_vg"]
    runs = [
        ("l2_features", 1111, [70.0, 81.0], 62.0),
        ("reference", 1111, [70.0, 80.0], 60.0),
        ("reference", 1112, [70.0, 82.0], 61.0),
        ("softmax", 1111, [70.0, 78.5], 59.0),
    ]
    for i, (trick, seed, scores, acc) in enumerate(runs):
        make_run(
            sweep,
            f"{i}_{trick}",
            [*common, f"seed={seed}", f"trick={trick}"],
            scores,
            extra={**ACC, "val/vqa_acc": acc},
        )
    return sweep


def test_the_trick_groups_reference_row_comes_first_with_deltas(tricks, capsys):
    assert main([str(tricks)]) == 0
    lines = capsys.readouterr().out.splitlines()
    head = "| trick | seeds | converged | best epoch | best val/score | Δ val/score | Δ VQA acc | VQA acc |"
    assert lines[0].startswith(head)
    ref = "| reference | 2 | no (0/2) | 1, 1 | 81.00 ± 1.41 | reference | reference | 60.50 ± 0.71 |"
    assert lines[2].startswith(ref)
    # one seed against two: a difference, but no interval to give it
    no_interval = "(no interval: n=1)"
    assert lines[3].startswith(
        f"| l2_features | 1 | no (0/1) | 1 | 81.00 | +0.00 {no_interval} | +1.50 {no_interval}"
    )
    assert lines[4].startswith(
        f"| softmax | 1 | no (0/1) | 1 | 78.50 | -2.50 {no_interval} | -1.50 {no_interval}"
    )
    rows = list(csv.DictReader((tricks / "report.csv").open()))
    assert [r["trick"] for r in rows] == ["reference", "l2_features", "softmax"]
    assert rows[0]["val/score delta"] == "" and float(rows[2]["val/score delta"]) == pytest.approx(-2.5)
    assert float(rows[1]["val/vqa_acc delta"]) == pytest.approx(1.5)
    assert (
        "one change against the reference row (trick=reference, first)" in (tricks / "report.md").read_text()
    )


def test_any_varying_key_can_be_the_reference(tmp_path, capsys):
    sweep = tmp_path / "s"
    make_run(sweep, "0_a", ["model.output=softmax", "seed=1"], [50.0, 55.0])
    make_run(sweep, "1_b", ["model.output=sigmoid", "seed=1"], [52.0, 57.25])
    assert main([str(sweep)]) == 0
    assert "Δ" not in capsys.readouterr().out  # no reference: the plain table
    assert main([str(sweep), "--reference", "model.output=sigmoid"]) == 0
    lines = capsys.readouterr().out.splitlines()
    head = "| model.output | seeds | converged | best epoch | best val/score | Δ val/score | parameters |"
    assert lines[0].startswith(head)
    assert lines[2].startswith("| sigmoid | 1 | no (0/1) | 1 | 57.25 | reference |")
    assert lines[3].startswith("| softmax | 1 | no (0/1) | 1 | 55.00 | -2.25 (no interval: n=1) |")


def test_a_reference_that_matches_no_row_names_what_the_runs_have(tricks, capsys):
    assert main([str(tricks), "--reference", "trick=gated_tanh"]) == 2
    err = capsys.readouterr().err
    assert "--reference trick=gated_tanh: no configuration has it" in err
    assert "['l2_features', 'reference', 'softmax']" in err
    assert not (tricks / "report.md").exists()
    with pytest.raises(SystemExit) as usage:
        main([str(tricks), "--reference", "trick"])
    assert usage.value.code == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_a_trick_sweep_without_its_reference_row_is_the_plain_table(tmp_path, capsys):
    sweep = tmp_path / "s"
    make_run(sweep, "0_a", ["trick=softmax", "seed=1"], [50.0, 55.0])
    make_run(sweep, "1_b", ["trick=l2_features", "seed=1"], [52.0, 57.0])
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out.splitlines()
    # said in one line, naming the reference axis value; no Δ column against another row
    assert out[0] == (
        "note: the reference row trick=reference has no finished run (none in these folders): no Δ "
        "column is made against another row; rerun it and report again"
    )
    assert "Δ" not in out[1]
    make_run(sweep, "2_c", ["seed=1"], [52.0, 56.0])  # trick unset: the reference recipe
    assert main([str(sweep)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("| default | 1 | no (0/1) | 1 | 56.00 | reference |")
    assert lines[3].startswith("| softmax | 1 | no (0/1) | 1 | 55.00 | -1.00 (no interval: n=1) |")
