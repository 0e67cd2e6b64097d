"""A full disk while writing checkpoints, on a real small tmpfs: named as a full disk, with what was kept."""

import os
import subprocess
import sys

import pytest
import torch

from butd.errors import CheckpointError
from butd.training.checkpoint_io import atomic_save, load_weights_only
from tests.conftest import TINY_DATA


def test_a_checkpoint_that_does_not_fit_leaves_the_previous_one_and_says_so(small_disk):
    disk = small_disk(256)
    path = disk / "checkpoints" / "last.ckpt"
    atomic_save({"w": torch.ones(1000)}, path)
    with pytest.raises(CheckpointError) as err:
        atomic_save({"w": torch.zeros(100_000)}, path)  # 400 kB into 256 kB
    message = str(err.value)
    assert message.startswith(f"disk full: No space left on device while writing checkpoint {path}")
    assert "the previous last.ckpt is intact" in message and "['last.ckpt']" in message
    assert f"resume with ckpt_path={path}" in message
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no .partial left
    assert torch.equal(load_weights_only(path)["w"], torch.ones(1000))


@pytest.mark.slow
def test_training_on_a_full_disk_stops_with_one_line(small_disk, tiny_data_dir, tmp_path):
    """`python -m butd.train` with its run folder on a disk that fills at the first checkpoint."""
    logs = small_disk(4096)
    small_disk.fill(logs, 96 * 1024)  # room for the config and logs, not for a checkpoint
    run = subprocess.run(
        [sys.executable, "-m", "butd.train", "experiment=quickstart", *TINY_DATA, "logger=csv"]
        + ["trainer.max_epochs=1", "model.num_hid=32", f"paths.data_dir={tiny_data_dir}"]
        + [f"paths.log_dir={logs}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WANDB_SILENT": "true"},
    )
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    (line,) = [x for x in run.stderr.splitlines() if x.startswith("error: ")]
    assert line.startswith("error: disk full: No space left on device while writing checkpoint ")
    assert "checkpoints kept in" in line and "then run again" in line
    assert not list(logs.rglob("*.partial"))
