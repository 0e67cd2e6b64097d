"""SIGTERM and SIGINT, sent to a real training process: a resumable checkpoint, the resume
command, exit status 143 or 130; the printed command resumes the run."""

import json
import signal
import time

import pytest

from butd.train import train
from tests.training.test_reliability import EPOCHS, cfg_for, cli, cli_args, wait_for

#: the model and loggers of `cli_args`, without its data and step checkpoints
RUN_CLI = ["trainer.accelerator=cpu", "logger=csv", "model.num_hid=32"]


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

    # the job resumed in place, as a long study's cut job is: the folder then reads as finished,
    # the failure record kept beside it
    from butd.reporting.runs import read_runs

    saved = job / "checkpoints" / "interrupted.ckpt"
    resumed = cli([*args, "seed=1", f"hydra.run.dir='{job}'", f"ckpt_path='{saved}'"], tmp_path)
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr[-3000:]
    assert not (job / "failure.json").exists()
    assert json.loads((job / "failure.superseded.1.json").read_text()) == failure
    (run,) = read_runs([sweep])
    assert run.status == "finished" and run.metrics["epoch"] == EPOCHS - 1


def _fault(hook: str, epoch: int, batch: int = 1) -> list[str]:
    """Overrides that make the run send itself SIGTERM at a batch of a stage (tests/training/faults.py)."""
    return [
        "+callbacks.fault._target_=tests.training.faults.SignalAt",
        f"+callbacks.fault.hook={hook}",
        f"+callbacks.fault.epoch={epoch}",
        f"+callbacks.fault.batch={batch}",
    ]


@pytest.mark.slow
def test_sigterm_during_validation_resumes_into_the_whole_validation(tiny_data_dir, tiny_run, tmp_path):
    """SIGTERM in the middle of epoch 1's validation: interrupted.ckpt, and the resumed run validates
    epoch 1 in full (not val/score null) and ends with the uninterrupted run's scores (`tiny_run`)."""
    logs = tmp_path / "logs"
    args = [
        a.replace(f"max_epochs={EPOCHS}", "max_epochs=2") for a in cli_args(tiny_data_dir, logs, "stopped")
    ]
    proc = cli([*args, *_fault("validation_batch_end", epoch=1)], tmp_path)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143, stderr[-3000:]
    saved = logs / "train" / "runs" / "stopped" / "checkpoints" / "interrupted.ckpt"
    assert "training stopped by SIGTERM at epoch 1" in stdout + stderr and saved.is_file()
    resumed = train(cfg_for(tiny_data_dir, logs, "resumed", ["trainer.max_epochs=2", f"ckpt_path={saved}"]))
    expected = tiny_run["metrics"]["history"]
    assert [r["epoch"] for r in resumed["history"]] == [0, 1]
    for got, want in zip(resumed["history"], expected, strict=True):
        assert got["val/score"] == pytest.approx(want["val/score"], abs=1e-4)
        assert got["val/loss"] == pytest.approx(want["val/loss"], rel=1e-4)
    assert resumed["val/score"] == pytest.approx(tiny_run["metrics"]["val/score"], abs=1e-4)


@pytest.mark.slow
def test_sigterm_during_the_test_evaluation_exits_143_and_evaluate_finishes_it(tiny_cp_raw, tmp_path):
    """A VQA-CP run terminated in its end-of-training test evaluation: exit 143 and the command
    that runs the evaluation alone; that command adds test/* to the run's metrics.json."""
    from tests.conftest import TINY_CP

    logs = tmp_path / "logs"
    run = logs / "train" / "runs" / "cp"
    data = [
        *TINY_CP,
        f"data.raw_dir={tiny_cp_raw}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.auto_prepare=true",
    ]
    args = [*data, *RUN_CLI, "trainer.max_epochs=1", f"paths.log_dir={logs}", f"hydra.run.dir={run}"]
    proc = cli([*args, *_fault("test_batch_end", epoch=1, batch=0)], tmp_path)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143, stderr[-3000:]
    output = stdout + stderr
    assert "Traceback" not in output
    assert "the test evaluation of split test was stopped by SIGTERM" in output
    record = json.loads((run / "metrics.json").read_text())
    assert record["val/score"] is not None and not any(k.startswith("test/") for k in record)
    command = output.split("Run the test evaluation alone (it adds test/* to that metrics.json) with: ")[1]
    command = command.splitlines()[0].split()
    assert command[:3] == ["python", "-m", "butd.evaluate"]
    # the printed command, composed and run in this process (a subprocess more would add seconds)
    from butd.evaluate import evaluate
    from tests.conftest import compose_job

    evaluate(compose_job("evaluate", command[3:], data_dir=tmp_path, output_dir=tmp_path / "evaluated"))
    record = json.loads((run / "metrics.json").read_text())
    assert 0 <= record["test/vqa_acc"] <= 100 and record["test_recorded_by"] == "butd.evaluate"
    assert set(record) >= {"test/score", "test/vqa_acc/yes_no", "test/vqa_acc/number", "test/vqa_acc/other"}
