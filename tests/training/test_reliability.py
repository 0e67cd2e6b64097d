"""Faults, for real: a SIGKILLed training process, a SLURM requeue signal, a kill in the middle of a
checkpoint write, truncated checkpoints and caches, NaN features, a learning rate that diverges.
Each test checks the message and that nothing written before the fault was lost."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from butd.cache.manifest import CacheError
from butd.config.data import DataConfig
from butd.data.batch import VQABatch
from butd.errors import CheckpointError
from butd.files import PARTIAL
from butd.preparation.build import prepare
from butd.train import train
from butd.training.callbacks.divergence import DivergenceError, DivergenceGuard
from butd.training.callbacks.run_checkpoint import RunCheckpoint
from butd.training.checkpoint_io import AtomicCheckpointIO
from tests.conftest import REPO, TINY_DATA, compose_train, subprocess_env

#: a small model and step checkpoints every 3 of the 10 steps of an epoch, so a kill lands anywhere
RUN = [
    "trainer.accelerator=cpu",
    "logger=csv",
    "model.num_hid=32",
    "callbacks.step_checkpoint.every_n_train_steps=3",
]
EPOCHS = 8
VAL_KEYS = ("val/loss", "val/score", "val/upper_bound")
TRAIN_KEYS = ("train/loss_epoch", "train/score")


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread, here and in the subprocesses (OMP_NUM_THREADS): the models are tiny, and
    two spinning threads on shared, busy cores make a step a hundred times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def snapshot(folder: Path) -> dict[str, str]:
    """Content hash of every file under `folder`."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def own_data(tiny_data_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny data set, for tests that damage it."""
    return Path(shutil.copytree(tiny_data_dir, tmp_path / "data"))


def cfg_for(data_dir: Path, logs: Path, run: str, overrides: list[str]):
    return compose_train(
        [*TINY_DATA, *RUN, *overrides],
        data_dir=data_dir,
        output_dir=logs / "train" / "runs" / run,
        log_dir=logs,
    )


def cli(args: list[str], cwd: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "butd.train", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(WANDB_SILENT="true", OMP_NUM_THREADS="1", **env),
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Poll until `path` exists; the process must still be running (the fault comes mid-run)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"training ended before {path.name} appeared:\n{proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear")
        time.sleep(0.02)


def cli_args(data_dir: Path, logs: Path, run: str, extra: list[str] = ()) -> list[str]:
    return [
        *TINY_DATA,
        *RUN,
        f"trainer.max_epochs={EPOCHS}",
        f"paths.data_dir={data_dir}",
        f"paths.log_dir={logs}",
        f"hydra.run.dir={logs}/train/runs/{run}",
        *extra,
    ]


@pytest.mark.slow
def test_sigkilled_run_resumes_with_ckpt_path_last_to_the_same_metrics(tiny_data_dir, tmp_path):
    logs = tmp_path / "logs"
    killed_dir = logs / "train" / "runs" / "killed"
    proc = cli(cli_args(tiny_data_dir, logs, "killed"), tmp_path)
    wait_for(killed_dir / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed_dir / "metrics.json").exists(), "the run must have been killed before its end"
    ckpt = torch.load(killed_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    position = ckpt["VQADataModule"]["train_order"]
    killed_files = snapshot(killed_dir / "checkpoints")

    # `ckpt_path=last` finds the killed run's last.ckpt; the run gets a folder of its own
    cfg = cfg_for(tiny_data_dir, logs, "resumed", [f"trainer.max_epochs={EPOCHS}", "ckpt_path=last"])
    train(cfg)
    resumed = json.loads((logs / "train" / "runs" / "resumed" / "metrics.json").read_text())
    assert resumed["epoch"] == EPOCHS - 1
    assert [r["epoch"] for r in resumed["history"]] == list(range(EPOCHS))
    assert resumed["history"][0]["step"] == 10 and resumed["history"][-1]["step"] == 10 * EPOCHS
    # the killed run's folder is left as it was; the resumed one holds the best checkpoint
    assert snapshot(killed_dir / "checkpoints") == killed_files
    best = Path(resumed["best_checkpoint"])
    assert best.parent == logs / "train" / "runs" / "resumed" / "checkpoints"
    assert best.name == f"best-epoch{resumed['best_epoch']:03d}-score{resumed['val/score']:.2f}.ckpt"

    # an uninterrupted run with the same seed and config reaches the same metrics
    straight = train(cfg_for(tiny_data_dir, tmp_path / "other", "straight", [f"trainer.max_epochs={EPOCHS}"]))
    partial_epoch = position["epoch"] if position["batches_done"] else None
    for a, b in zip(straight["history"], resumed["history"], strict=True):
        assert {k: a[k] for k in VAL_KEYS} == {k: b[k] for k in VAL_KEYS}, a["epoch"]
        assert a["step"] == b["step"]
        if a["epoch"] != partial_epoch:  # an epoch resumed midway averages train/* over its second part
            assert {k: a[k] for k in TRAIN_KEYS} == {k: b[k] for k in TRAIN_KEYS}, a["epoch"]
    assert straight["val/score"] == resumed["val/score"] and straight["best_epoch"] == resumed["best_epoch"]


@pytest.mark.slow
def test_slurm_requeue_signal_saves_requeues_and_the_requeued_job_resumes(
    tiny_data_dir, tmp_path, monkeypatch
):
    logs = tmp_path / "logs"
    bin_dir = tmp_path / "bin"  # SLURM's scontrol, recording what it is asked
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/scontrol.log\n')
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {
        "SLURM_NTASKS": "1",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "butd",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "localhost",
    }
    proc = cli(
        cli_args(tiny_data_dir, logs, "first"), tmp_path, PATH=f"{bin_dir}:{os.environ['PATH']}", **slurm
    )
    wait_for(logs / "train" / "runs" / "first" / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(signal.SIGUSR1)
    wait_for(tmp_path / "scontrol.log", proc)
    proc.send_signal(signal.SIGKILL)  # what SLURM does to a requeued job
    proc.wait()
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    requeue_dir = logs / "train" / "slurm" / "4242"
    assert [p.name for p in requeue_dir.glob("*.ckpt")] == ["hpc_ckpt_1.ckpt"]
    saved = torch.load(requeue_dir / "hpc_ckpt_1.ckpt", map_location="cpu", weights_only=True)

    # the requeued job: same job id, a new Hydra folder, no ckpt_path given
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    summary = train(cfg_for(tiny_data_dir, logs, "requeued", [f"trainer.max_epochs={EPOCHS}"]))
    assert [r["epoch"] for r in summary["history"]] == list(range(EPOCHS))
    assert summary["history"][-1]["step"] == 10 * EPOCHS
    first_done = [r for r in summary["history"] if r["step"] <= saved["global_step"]]
    assert len(first_done) == saved["epoch"] + (1 if saved["global_step"] % 10 == 0 else 0)
    metrics = json.loads((logs / "train" / "runs" / "requeued" / "metrics.json").read_text())
    assert metrics["epoch"] == EPOCHS - 1


_KILL_MID_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from butd.training.checkpoint_io import AtomicCheckpointIO

    class KilledWhilePickled:
        def __reduce__(self):
            os.kill(os.getpid(), signal.SIGKILL)

    AtomicCheckpointIO().save_checkpoint(
        {"state_dict": {"w": torch.zeros(1000)}, "epoch": 2, "bomb": KilledWhilePickled()}, sys.argv[1]
    )
    """
)


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("this object cannot be pickled")


@pytest.mark.slow
def test_a_kill_in_the_middle_of_a_checkpoint_write_leaves_the_previous_file(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(1000)}, "epoch": 1}, path)
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_MID_WRITE, str(path)], cwd=REPO, capture_output=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL
    survivor = io.load_checkpoint(path)
    assert survivor["epoch"] == 1 and torch.equal(survivor["state_dict"]["w"], torch.ones(1000))
    # the killed write leaves its partial file, which the next write replaces
    assert (tmp_path / "checkpoints" / f"last.ckpt{PARTIAL}").exists()
    io.save_checkpoint({"state_dict": {"w": torch.full((3,), 2.0)}, "epoch": 3}, path)
    assert io.load_checkpoint(path)["epoch"] == 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]

    # an exception in the middle of a write: the old file again, and no debris
    with pytest.raises(RuntimeError, match="cannot be pickled"):
        io.save_checkpoint({"state_dict": {}, "bad": _Unpicklable()}, path)
    assert io.load_checkpoint(path)["epoch"] == 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_resumed_run_keeps_the_best_score_of_the_earlier_folder(tmp_path):
    old_dir, new_dir = tmp_path / "a" / "checkpoints", tmp_path / "b" / "checkpoints"
    old_dir.mkdir(parents=True)
    old_best = old_dir / "best-epoch003-score80.00.ckpt"
    old_best.write_bytes(b"the best weights")
    state = {
        "monitor": "val/score",
        "best_model_score": torch.tensor(80.0),
        "best_model_path": str(old_best),
        "current_score": torch.tensor(75.0),
        "dirpath": str(old_dir),
        "best_k_models": {str(old_best): torch.tensor(80.0)},
        "kth_best_model_path": str(old_best),
        "kth_value": torch.tensor(80.0),
        "last_model_path": "",
    }
    cb = RunCheckpoint(dirpath=str(new_dir), monitor="val/score", mode="max", save_top_k=1)
    # Lightning tells the callbacks which file it resumes (trainer.ckpt_path), then gives the state
    cb.on_load_checkpoint(SimpleNamespace(ckpt_path=str(old_dir / "last.ckpt")), None, {})
    cb.load_state_dict(state)
    new_best = new_dir / old_best.name
    assert cb.best_model_path == str(new_best) and float(cb.best_model_score) == 80.0
    assert new_best.read_bytes() == b"the best weights" and new_best.stat().st_ino == old_best.stat().st_ino
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    assert not cb.check_monitor_top_k(trainer, torch.tensor(79.0))  # a worse epoch is not the new best
    assert cb.check_monitor_top_k(trainer, torch.tensor(81.0))
    # Lightning's own class forgets the score when the folder changes
    plain_cb = RunCheckpoint.__mro__[1](dirpath=str(new_dir), monitor="val/score", mode="max", save_top_k=1)
    with pytest.warns(UserWarning, match="dirpath has changed"):
        plain_cb.load_state_dict(state)
    assert plain_cb.best_model_score is None


@pytest.mark.slow
def test_truncated_checkpoint_is_a_clear_error_and_another_checkpoint_resumes(tiny_data_dir, tmp_path):
    logs = tmp_path / "logs"
    train(cfg_for(tiny_data_dir, logs, "first", ["trainer.max_epochs=1"]))
    first = json.loads((logs / "train" / "runs" / "first" / "metrics.json").read_text())
    last = logs / "train" / "runs" / "first" / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    before = snapshot(logs / "train" / "runs" / "first")

    with pytest.raises(CheckpointError) as err:
        train(cfg_for(tiny_data_dir, logs, "second", ["trainer.max_epochs=2", "ckpt_path=last"]))
    message = str(err.value)
    assert f"cannot read the checkpoint {last}" in message and "truncated" in message
    best = Path(first["best_checkpoint"])
    assert best.name in message and "ckpt_path=PATH" in message
    assert snapshot(logs / "train" / "runs" / "first") == before  # nothing touched, not even the bad file
    assert not list((logs / "train" / "runs").glob("second/checkpoints/*.ckpt"))

    # the checkpoint the message offers resumes the run
    resumed = train(cfg_for(tiny_data_dir, logs, "third", ["trainer.max_epochs=2", f"ckpt_path={best}"]))
    assert [r["epoch"] for r in resumed["history"]] == [0, 1]


@pytest.mark.slow
def test_truncated_hdf5_cache_names_the_file_and_the_rebuild_command(tiny_data_dir, tmp_path):
    data_dir = own_data(tiny_data_dir, tmp_path)
    cache = data_dir / "synthetic" / "cache"
    h5 = cache / "train.h5"
    h5.write_bytes(h5.read_bytes()[: h5.stat().st_size // 3])
    others = {k: v for k, v in snapshot(cache).items() if k != "train.h5"}
    # (the synthetic set rebuilds a cache that does not load; a real data set stops instead)
    cfg = cfg_for(data_dir, tmp_path / "logs", "broken", ["trainer.max_epochs=1", "data.auto_prepare=false"])
    with pytest.raises(CacheError) as err:
        train(cfg)
    assert f"{h5} is {h5.stat().st_size:,} bytes but was" in str(err.value)
    assert "truncated" in str(err.value)
    assert "python -m butd.prepare data=synthetic force=true" in str(err.value)
    assert {k: v for k, v in snapshot(cache).items() if k != "train.h5"} == others

    # the command the message gives repairs it
    prepare(DataConfig.from_dict(cfg.data), force=True, progress=False)
    summary = train(cfg_for(data_dir, tmp_path / "logs", "repaired", ["trainer.max_epochs=1"]))
    assert summary["history"][0]["val/score"] is not None


@pytest.mark.slow
def test_nan_features_stop_the_run_naming_the_questions_and_keep_the_checkpoints(tiny_data_dir, tmp_path):
    data_dir = own_data(tiny_data_dir, tmp_path)
    logs = tmp_path / "logs"
    train(cfg_for(data_dir, logs, "clean", ["trainer.max_epochs=1"]))
    clean = snapshot(logs / "train" / "runs" / "clean")

    h5 = data_dir / "synthetic" / "cache" / "train.h5"
    bad = h5.with_name("bad.h5")  # a new file: the finished run may still hold the old one open
    shutil.copy(h5, bad)
    with h5py.File(bad, "r+") as f:
        lo, hi = f["images/box_offsets"][3:5]
        f["images/features"][lo:hi] = np.nan  # one image's features go bad
        q = f["questions"]
        damaged = set(q["question_id"][:][q["image_index"][:] == 3].tolist())
    os.replace(bad, h5)
    cfg = cfg_for(data_dir, logs, "diverged", ["trainer.max_epochs=3", "ckpt_path=last"])
    with pytest.raises(DivergenceError) as err:
        train(cfg)
    message = str(err.value)
    record = json.loads((logs / "train" / "runs" / "diverged" / "divergence.json").read_text())
    assert record["epoch"] == 1 and 10 <= record["global_step"] < 20
    assert f"training diverged at global step {record['global_step']} (epoch 1" in message
    assert "the training loss is nan" in message
    assert set(record["question_ids_with_nonfinite_features"]) <= damaged
    assert record["question_ids_with_nonfinite_features"]
    assert set(record["question_ids_with_nonfinite_features"]) <= set(record["question_ids"])
    assert str(record["question_ids_with_nonfinite_features"][0]) in message
    assert "lower learning rate (optim.optimizer.lr=0.002 now" in message and "the data" in message
    # nothing of the diverged state was written: the earlier run is intact, no new last.ckpt
    assert snapshot(logs / "train" / "runs" / "clean") == clean
    new_ckpts = sorted(p.name for p in (logs / "train" / "runs" / "diverged" / "checkpoints").iterdir())
    assert new_ckpts == [n.split("/")[1] for n in clean if n.startswith("checkpoints/best-")]
    assert not (logs / "train" / "runs" / "diverged" / "metrics.json").exists()


@pytest.mark.parametrize(
    "method",
    [[], ["debias=gge_dq_iter"], ["debias=gge_dq_iter", "optim.clip_grad_norm=null"]],
    ids=["plain", "gge_dq_iter", "gge_dq_iter_unclipped"],
)
def test_a_learning_rate_that_diverges_stops_at_the_first_bad_step(tiny_data_dir, tmp_path, method):
    """Also under debias.mode=iter's two steps per batch (manual optimisation), clipped or not."""
    logs = tmp_path / "logs"
    with pytest.raises(DivergenceError) as err:
        train(
            cfg_for(tiny_data_dir, logs, "hot", ["trainer.max_epochs=2", "optim.optimizer.lr=1e30", *method])
        )
    record = json.loads((logs / "train" / "runs" / "hot" / "divergence.json").read_text())
    # the plain loop's first step is finite; iter's first batch already has a bad step (its second)
    assert record["epoch"] == 0 and record["global_step"] >= (0 if method else 1)
    assert len(record["question_ids"]) == 16
    assert record["question_ids_with_nonfinite_features"] == []
    assert "optim.optimizer.lr=1e+30 now, try 1e+29" in str(err.value)
    # the resume it advises is one that works (tests/training/test_resume.py)
    assert "add optim.optimizer.lr=1e+29 'resume_overrides=[optim.optimizer.lr]'" in str(err.value)
    assert "checkpoints on disk are from before it (none yet)" in str(err.value)
    assert not (logs / "train" / "runs" / "hot" / "checkpoints").exists()


class Crash(Exception):
    pass


class CrashInValidation(pl.Callback):
    """Fails at the start of one epoch's validation: after that epoch's last step, before its end."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_validation_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch and not trainer.sanity_checking:
            raise Crash(f"crash in the validation of epoch {self.epoch}")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "epochs", "steps_per_batch"),
    [
        ([], 4, 1),
        (["debias=gge_dq", "debias.mode=iter", "callbacks.step_checkpoint.every_n_train_steps=6"], 3, 2),
    ],
    ids=["plain", "gge_dq_iter"],
)
def test_crash_between_the_last_step_and_the_validation_of_an_epoch(
    tiny_data_dir, tmp_path, method, epochs, steps_per_batch
):
    """The last step checkpoint of an epoch is the one before its last batch, so the resumed run
    validates that epoch and records it instead of skipping to the next one. With debias.mode=iter
    (two optimizer steps per batch, Lightning's manual optimisation) global_step counts both steps,
    the step checkpoint every 6 steps lands on the same batches as every 3 of the plain loop, and
    the resumed run retraces the uninterrupted one too."""
    logs = tmp_path / "logs"
    crash = [
        "+callbacks.crash._target_=tests.training.test_reliability.CrashInValidation",
        "+callbacks.crash.epoch=2",
    ]
    run = [f"trainer.max_epochs={epochs}", *method]
    with pytest.raises(Crash):
        train(cfg_for(tiny_data_dir, logs, "crashed", [*run, *crash]))
    last = logs / "train" / "runs" / "crashed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 27 * steps_per_batch
    resumed = train(cfg_for(tiny_data_dir, logs, "resumed", [*run, f"ckpt_path={last}"]))
    straight = train(cfg_for(tiny_data_dir, logs, "straight", run))
    assert [r["epoch"] for r in resumed["history"]] == list(range(epochs))
    assert [r["step"] for r in resumed["history"]] == [10 * steps_per_batch * (e + 1) for e in range(epochs)]
    for a, b in zip(straight["history"], resumed["history"], strict=True):
        assert {k: a[k] for k in VAL_KEYS} == {k: b[k] for k in VAL_KEYS}, a["epoch"]
        if a["epoch"] != 2:
            assert {k: a[k] for k in TRAIN_KEYS} == {k: b[k] for k in TRAIN_KEYS}, a["epoch"]


def _batch(*, v: torch.Tensor, question_id: torch.Tensor, **fields) -> VQABatch:
    """A batch with only what the divergence guard reads (the features, the question ids)."""
    n = len(question_id)
    b = fields.pop("b", torch.zeros(n, 6))
    return VQABatch(v=v, b=b, q=torch.zeros(n, 1, dtype=torch.long), question_id=question_id, **fields)


class _SqrtAtZero(pl.LightningModule):
    """A finite loss whose gradient is not: d sqrt(x)/dx at x = 0."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))

    def training_step(self, batch, batch_idx):
        return (self.w * batch.v).sum() + (self.w[0] * 0).sqrt()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("strict", [True, False])
def test_a_non_finite_gradient_stops_naming_its_step(tmp_path, strict):
    """Strict: before the optimizer step. Deferred (the default): read at the next interval (here
    the 3rd step, log_every_n_steps=3), still naming step 0 and its batch."""
    batches = [_batch(v=torch.ones(2, 3), question_id=torch.tensor([7 + 2 * i, 8 + 2 * i])) for i in range(5)]
    module = _SqrtAtZero()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        log_every_n_steps=3,
        enable_progress_bar=False,
        enable_checkpointing=False,
        callbacks=[DivergenceGuard(dirpath=str(tmp_path), strict=strict)],
    )
    with pytest.raises(DivergenceError, match=r"global step 0 .*the gradient norm is nan") as err:
        trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    assert "Question ids of the batch: [7, 8]" in str(err.value)
    if strict:
        assert torch.equal(module.w.detach(), torch.ones(3)), "the optimizer step must not have run"
    else:
        assert trainer.global_step == 3, "stopped at the first interval"


def test_non_finite_values_in_padded_boxes_are_not_reported_as_damaged_data():
    """With `v_mask`, only the real boxes count: the model zeroes padded ones unread."""
    from butd.training.callbacks.divergence import _ids_with_bad_features

    v, b = torch.zeros(3, 4, 5), torch.zeros(3, 4, 6)
    mask = torch.tensor([[True, True, False, False], [True] * 4, [True, True, True, False]])
    v[0, 3] = float("nan")  # padding
    b[2, 3] = float("inf")  # padding
    batch = _batch(v=v, b=b, v_mask=mask, question_id=torch.tensor([10, 11, 12]))
    assert _ids_with_bad_features(batch) == []
    assert _ids_with_bad_features(replace(batch, v_mask=None)) == [10, 12]
    v[1, 0, 2] = float("nan")  # a real box
    b[2, 1, 0] = float("-inf")  # a real box
    assert _ids_with_bad_features(batch) == [11, 12]
