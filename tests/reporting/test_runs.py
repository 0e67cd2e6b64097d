"""Reading runs back: failed starts, resumed runs counted once, unreadable records listed."""

import json

from butd.report import main
from butd.reporting.runs import group_runs, read_runs
from tests.reporting.test_tables import make_run


def test_a_resumed_run_and_the_run_it_resumed_are_one_run(tmp_path, capsys):
    runs_dir = tmp_path / "quickstart" / "runs"
    first = make_run(runs_dir, "2026-01-01_10-00-00", ["experiment=quickstart"], [80.0, 84.64])
    resume = ["experiment=quickstart", "ckpt_path=last"]
    second = make_run(runs_dir, "2026-01-01_11-00-00", resume, [80.0, 84.64])
    metrics = json.loads((second / "metrics.json").read_text())
    metrics["lineage"] = [str(first), str(second)]
    (second / "metrics.json").write_text(json.dumps(metrics))

    runs = read_runs([tmp_path])
    assert [(r.path, r.status) for r in runs] == [(first, "resumed"), (second, "finished")]
    (group,) = group_runs(runs)
    assert group.runs == [runs[1]]
    assert main([str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "84.64 ± 0.00" not in out and "84.64" in out
    assert f"`{first}` | resumed | resumed by {second}" in out


def test_an_unreadable_record_is_listed_with_its_path_and_the_report_goes_on(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    make_run(sweep, "0_a", ["model.activation=relu", "seed=1"], [70.0, 80.0])
    broken = make_run(sweep, "1_b", ["model.activation=glu", "seed=1"], [70.0, 81.0])
    (broken / "metrics.json").write_text('{"val/score": 81.0, "history": [')  # cut off mid-write
    damaged = make_run(sweep, "2_c", ["model.activation=gated_tanh", "seed=1"], None, failure="boom")
    (damaged / ".hydra" / "overrides.yaml").write_text("- [unclosed\n")

    assert main([str(sweep), "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "80.00" in out  # the readable run's row
    reason = f"cannot read its record: {broken / 'metrics.json'} is not valid JSON"
    assert f"`{broken}` | unreadable | {reason}" in out
    assert f"`{damaged}` | unreadable | cannot read its record:" in out
    assert "unreadable" in (tmp_path / "report" / "report.md").read_text()
