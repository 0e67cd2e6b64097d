"""No code from files: crafted pickles and checkpoints run nothing, in any entry point.

Each crafted file asks, when loaded, to run `touch MARKER`; a test fails if the marker appears.
The crafted dictionary also returns a valid word list, so a loader that ran it would leave no trace
but the marker.
"""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from butd.errors import CheckpointError
from butd.evaluation.checkpoint import load_checkpoint
from butd.import_reference import ReferenceFileError, read_dictionary, read_label2ans
from butd.training.checkpoint_io import AtomicCheckpointIO, load_weights_only
from tests.conftest import TINY_DATA


class _Touch:
    """Pickles as a call of `os.system("touch MARKER")` (and, with `then`, of `list(then)`)."""

    def __init__(self, marker: Path, then: object = None) -> None:
        self.marker, self.then = marker, then

    def __reduce__(self):
        if self.then is None:
            return (os.system, (f"touch {self.marker}",))
        # eval runs the command and yields the harmless value, as a stealthy pickle would
        return (eval, (f"(__import__('os').system('touch {self.marker}'), {self.then!r})[1]",))


def crafted_checkpoint(path: Path, marker: Path) -> Path:
    """A Lightning-shaped checkpoint whose hyper-parameters run a command when unpickled."""
    torch.save({"state_dict": {}, "hyper_parameters": _Touch(marker), "butd": {}}, path)
    return path


def test_a_crafted_pickle_runs_nothing_even_when_it_returns_a_valid_list(tmp_path):
    marker = tmp_path / "ran"
    words = ["what", "color"]
    (tmp_path / "dictionary.pkl").write_bytes(pickle.dumps(_Touch(marker, [{"what": 0, "color": 1}, words])))
    (tmp_path / "trainval_label2ans.pkl").write_bytes(pickle.dumps(_Touch(marker, ["yes", "no"]), protocol=2))
    with pytest.raises(
        ReferenceFileError, match=r"dictionary.pkl is not a readable pickle: it asks to import"
    ):
        read_dictionary(tmp_path / "dictionary.pkl")
    with pytest.raises(ReferenceFileError, match=r"it asks to import (__builtin__|builtins).eval"):
        read_label2ans(tmp_path / "trainval_label2ans.pkl")
    assert not marker.exists()


def test_plain_pickles_of_python3_still_load(tmp_path):
    (tmp_path / "a.pkl").write_bytes(pickle.dumps(["yes", "no", "2"], protocol=4))
    assert read_label2ans(tmp_path / "a.pkl") == ["yes", "no", "2"]


def test_a_crafted_checkpoint_is_refused_even_with_the_override_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "ran"
    path = crafted_checkpoint(tmp_path / "evil.ckpt", marker)
    for load in (load_weights_only, load_checkpoint, AtomicCheckpointIO().load_checkpoint):
        with pytest.raises(CheckpointError) as err:
            load(path)
        message = str(err.value)
        assert message.startswith(f"refused to load {path}: it holds objects beyond tensors")
        assert "posix.system" in message or "os.system" in message
        assert "weights_only=False" not in message  # torch's advice to load it unsafely is dropped
    assert not marker.exists()


@pytest.mark.slow
def test_no_entry_point_runs_a_crafted_file(tiny_run, tiny_data_dir, tmp_path):
    """Every entry point that reads a checkpoint or pickle, as a user runs it, with torch's
    override variable set: each exits 1 with butd's message, and nothing ran."""
    marker = tmp_path / "ran"
    evil = crafted_checkpoint(tmp_path / "evil.ckpt", marker)
    (tmp_path / "dictionary.pkl").write_bytes(pickle.dumps(_Touch(marker, [{"a": 0}, ["a"]])))
    data = [o for o in TINY_DATA if o != "data=synthetic"]
    commands = {
        "evaluate": ["butd.evaluate", f"ckpt_path={evil}", "split=val"],
        "predict": ["butd.predict", f"ckpt_path={evil}", "split=val"],
        "visualize": ["butd.visualize", f"ckpt_path={evil}", "image_id=1", "questions=[what]"],
        "train": ["butd.train", "experiment=quickstart", *data, "logger=csv", f"ckpt_path={evil}"],
        "import_reference": [
            "butd.import_reference",
            f"checkpoint={evil}",
            f"dictionary={tmp_path / 'dictionary.pkl'}",
            f"label2ans={tmp_path / 'dictionary.pkl'}",
        ],
    }
    env = {
        **os.environ,
        "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
        "WANDB_SILENT": "true",
        "BUTD_DATA_DIR": str(tiny_data_dir),
    }
    for name, args in commands.items():
        run = subprocess.run(
            [sys.executable, "-m", *args], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env
        )
        assert run.returncode == 1, f"{name}: {run.stderr[-2000:]}"
        assert "Traceback" not in run.stderr, f"{name}: {run.stderr[-2000:]}"
        assert "refused" in run.stderr or "not a readable pickle" in run.stderr, f"{name}: {run.stderr}"
        assert not marker.exists(), f"{name} ran the crafted file's command"
