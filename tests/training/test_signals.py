"""SIGTERM and SIGINT, sent to a real training process: a resumable checkpoint, the resume
command, exit status 143 or 130; the printed command resumes the run."""

import json
import signal
import time

import pytest

from butd.train import train
from tests.training.test_reliability import EPOCHS, cfg_for, cli, cli_args, wait_for


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_prints_the_resume_command_and_exits_non_zero(tiny_data_dir, tmp_path, sig, status):
    logs = tmp_path / "logs"
    run = logs / "train" / "runs" / "stopped"
    proc = cli(cli_args(tiny_data_dir, logs, "stopped"), tmp_path)
    wait_for(run / "checkpoints" / "last.ckpt", proc)  # past the first epoch
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == status, stderr[-3000:]
    output = stdout + stderr  # the message is a log line (Hydra's job log goes to stdout)
    saved = run / "checkpoints" / "interrupted.ckpt"
    assert saved.is_file()
    assert f"training stopped by {sig.name}" in output
    assert "Resume with: python -m butd.train " in output and f"ckpt_path={saved}" in output
    assert "Traceback" not in output

    resumed = train(
        cfg_for(tiny_data_dir, logs, "resumed", [f"trainer.max_epochs={EPOCHS}", f"ckpt_path={saved}"])
    )
    assert resumed["history"][-1]["epoch"] == EPOCHS - 1


@pytest.mark.slow
def test_a_sweep_stopped_by_sigterm_records_the_job_as_failed_and_prints_its_summary(tiny_data_dir, tmp_path):
    """`python -m butd.train -m seed=1,2` terminated during its first job."""
    logs = tmp_path / "logs"
    sweep = logs / "train" / "multiruns" / "terminated"
    args = [a for a in cli_args(tiny_data_dir, logs, "unused") if not a.startswith("hydra.run.dir")]
    proc = cli(["-m", *args, f"hydra.sweep.dir={sweep}", "seed=1,2"], tmp_path)
    deadline = time.monotonic() + 300
    while not (jobs := list(sweep.glob("0_*/checkpoints/last.ckpt"))):  # the first job's first epoch
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.02)
    job = jobs[0].parent.parent
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143, stderr[-3000:]
    assert "Traceback" not in stderr
    output = stdout + stderr  # Hydra logs a multirun's lines to stdout
    failure = json.loads((job / "failure.json").read_text())
    assert failure["message"].startswith("training stopped by SIGTERM") and "ckpt_path=" in failure["message"]
    assert "0 jobs finished, 1 failed, in " in output
    assert f"failed: {job.name}: training stopped by SIGTERM" in output
    assert "the sweep was stopped by SIGTERM: the points after this job did not run" in output
    assert f"compare them: python -m butd.report {sweep}" in output
    assert [p.name for p in sweep.glob("1_*")] == []  # the second point never started
