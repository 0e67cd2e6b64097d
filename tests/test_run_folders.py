"""Run folders as two users starting trainings at once make them: real processes, real Hydra."""

import datetime as dt
import os
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
