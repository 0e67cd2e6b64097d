"""Run folders as two users starting trainings at once make them: real processes, real Hydra."""

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocess CLI runs

#: the run fails fast (no data) after Hydra made its folder and wrote its config there
FAST_FAIL = ["butd.train", "data=vqa2"]


def _start(cwd: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", *FAST_FAIL, *extra],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BUTD_DATA_DIR": str(cwd / "empty"), "WANDB_SILENT": "true"},
    )


def test_two_runs_asking_for_one_folder_get_one_each(tmp_path):
    """The same folder name at the same moment (as two runs in one second): two folders, one run each."""
    same = 'hydra.run.dir="${butd.new_folder:${paths.log_dir}/train/runs/same_second}"'
    procs = [_start(tmp_path, same, f"seed={seed}") for seed in (1, 2)]
    for proc in procs:
        proc.communicate(timeout=600)
        assert proc.returncode == 1  # the missing data, not a clash
    runs = tmp_path / "outputs" / "train" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["same_second", "same_second_2"]
    seeds = {(folder / ".hydra" / "overrides.yaml").read_text().count("seed=1") for folder in runs.iterdir()}
    assert seeds == {0, 1}  # each folder holds one run's config, not both


def test_the_default_run_folder_moves_aside_when_its_second_is_taken(tmp_path):
    """Every second of the next minutes already has a folder: the run takes `<time>_2`, touches none."""
    runs = tmp_path / "outputs" / "train" / "runs"
    now = dt.datetime.now()
    taken = [(now + dt.timedelta(seconds=s)).strftime("%Y-%m-%d_%H-%M-%S") for s in range(-2, 300)]
    for name in taken:
        (runs / name).mkdir(parents=True)
    proc = _start(tmp_path)
    proc.communicate(timeout=600)
    assert proc.returncode == 1
    new = [p for p in runs.iterdir() if p.name not in taken]
    assert len(new) == 1 and new[0].name.endswith("_2") and new[0].name[:-2] in taken
    assert (new[0] / ".hydra" / "config.yaml").is_file()
    assert not any(any((runs / name).iterdir()) for name in taken)


def _train(cwd: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    from tests.conftest import TINY_DATA

    tiny = [*TINY_DATA, "trainer.accelerator=cpu", "logger=csv", "model.num_hid=32"]
    return subprocess.run(
        # (Hydra's -m goes before the overrides)
        [
            sys.executable,
            "-m",
            "butd.train",
            *[e for e in extra if e == "-m"],
            *tiny,
            f"paths.data_dir={data_dir}",
        ]
        + [e for e in extra if e != "-m"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"},
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_run_in_a_named_run_folder_is_refused_and_the_first_kept(tiny_data_dir, tmp_path):
    """Two runs with one `hydra.run.dir`: the second is refused in one line before Hydra writes its
    config there, and the first run's metrics.json, overrides, CSV log and checkpoints are intact.
    A sweep into a named sweep folder holding runs is refused the same way."""
    from butd.config.run_folder import check_run_folder

    run = tmp_path / "runs" / "mine"
    first = _train(tmp_path, tiny_data_dir, "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
                   "seed=1", f"hydra.run.dir={run}")  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    kept = _files(run)
    assert {"metrics.json", ".hydra/overrides.yaml", "checkpoints/last.ckpt"} <= set(kept)
    second = _train(tmp_path, tiny_data_dir, "trainer.max_epochs=1", "seed=2", f"hydra.run.dir={run}")
    assert second.returncode == 1 and "Traceback" not in second.stderr
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert lines == [
        f"error: hydra.run.dir={run} holds a previous run (metrics.json, checkpoints/, csv/), which this run "
        f"would replace; resume it with ckpt_path={run}/checkpoints/last.ckpt, choose another "
        "hydra.run.dir, or replace it with overwrite=true"
    ]
    assert _files(run) == kept
    # what lets a command use the folder: resuming the run in it, or saying overwrite=true
    check_run_folder(run, ckpt_path=run / "checkpoints" / "last.ckpt", overwrite=False, key="hydra.run.dir")
    check_run_folder(run, ckpt_path="last", overwrite=False, key="hydra.run.dir")
    check_run_folder(run, ckpt_path=None, overwrite=True, key="hydra.run.dir")
    sweep = tmp_path / "sweep"
    shutil.copytree(run, sweep / "0_seed=1")
    again = _train(tmp_path, tiny_data_dir, "-m", "seed=1,2", f"hydra.sweep.dir={sweep}")
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert again.stderr.strip().startswith(
        f"error: hydra.sweep.dir={sweep} holds an earlier sweep's runs (0_seed=1)"
    )
    assert sorted(p.name for p in sweep.iterdir()) == ["0_seed=1"] and _files(sweep / "0_seed=1") == kept
