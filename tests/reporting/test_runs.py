"""Reading runs back: failed starts, resumed runs counted once, unreadable records listed."""

import json

import pytest

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


@pytest.mark.slow
def test_a_record_butd_never_writes_is_unreadable_and_the_report_goes_on(tmp_path):
    """NaN, Infinity or a string as a score, and a seed shaped like an interpolation: each run is
    listed as unreadable with its path and why, the others are tabled (the real command, run as a
    user runs it; `${oc.env:...}` in a run folder is never resolved)."""
    import os
    import subprocess
    import sys

    sweep = tmp_path / "sweep"
    for i, seed in enumerate((1, 2)):
        make_run(sweep, f"{i}_ok", ["model.activation=relu", f"seed={seed}"], [70.0, 80.0 + i])
    bad = {}
    for i, value in enumerate(("NaN", "Infinity", '"abc"'), start=2):
        run = make_run(sweep, f"{i}_bad", ["model.activation=relu", f"seed={i + 1}"], [70.0, 82.0])
        text = (run / "metrics.json").read_text()
        (run / "metrics.json").write_text(text.replace('"val/score": 82.0', f'"val/score": {value}', 1))
        bad[run] = value
    seeded = make_run(sweep, "5_env", ["model.activation=relu"], [70.0, 83.0])
    (seeded / ".hydra" / "config.yaml").write_text("seed: ${oc.env:BUTD_TEST_SECRET}\n")

    env = {**os.environ, "BUTD_TEST_SECRET": "s3cr3t-4217"}
    done = subprocess.run([sys.executable, "-m", "butd.report", str(sweep), "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "80.50 ± 0.71" in done.stdout  # the two readable runs, mean and std
    for run in bad:
        assert f"`{run}` | unreadable | cannot read its record: {run / 'metrics.json'}" in done.stdout
    assert (
        f"`{seeded}` | unreadable | cannot read its record: {seeded / '.hydra' / 'config.yaml'}: seed="
        in done.stdout
    )
    written = "".join(p.read_text(errors="replace") for p in (tmp_path / "r").glob("report.*"))
    assert "s3cr3t-4217" not in done.stdout + done.stderr + written
