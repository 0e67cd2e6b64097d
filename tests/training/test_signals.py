"""SIGTERM and SIGINT, sent to a real training process: a resumable checkpoint, the resume
command, exit status 143 or 130; the printed command resumes the run."""

import signal

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
