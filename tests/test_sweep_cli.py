"""Sweeps as a user runs them: real Hydra multiruns in subprocesses, W&B offline, then the report."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from butd.report import main as report
from tests.conftest import TINY_DATA
from tests.test_cli import _run

pytestmark = pytest.mark.slow  # sweeps, Optuna, DDP and SLURM as subprocesses

#: the tiny set on top of experiment=quickstart (which picks data=synthetic itself)
TINY = [o for o in TINY_DATA if o != "data=synthetic"]


def _jobs(root: Path) -> list[Path]:
    (sweep,) = root.iterdir()
    return sorted((d for d in sweep.iterdir() if d.is_dir()), key=lambda d: int(d.name.split("_")[0]))


def _wandb(run_dir: Path, *args: str) -> str:
    exe = shutil.which("wandb")
    assert exe, "the wandb command comes with the wandb package"
    out = subprocess.run(
        [exe, "leet", "inspect", *args, str(run_dir)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_activation_sweep_gives_three_wandb_runs_and_a_report(tmp_path, tiny_data_dir):
    """The issue's acceptance: a quick-start sweep over activations, then butd.report on its folder."""
    acts = ["relu", "glu", "gated_tanh"]
    sweep = _run(
        [
            "butd.train",
            "-m",
            "experiment=quickstart",
            f"model.activation={','.join(acts)}",
            "trainer.max_epochs=1",
        ]
        + ["model.num_hid=32", *TINY],
        tmp_path,
        BUTD_DATA_DIR=str(tiny_data_dir),
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    jobs = _jobs(tmp_path / "outputs" / "quickstart" / "multiruns")
    assert [j.name.split(",")[0] for j in jobs] == [f"{i}_model.activation={a}" for i, a in enumerate(acts)]

    for job, act in zip(jobs, acts, strict=True):
        metrics = json.loads((job / "metrics.json").read_text())
        (run,) = (job / "wandb").glob("offline-run-*")
        record = json.loads(_wandb(run, "--summary", "--json"))
        assert record["state"] == "finished" and record["exit_code"] == 0
        assert record["name"].startswith(f"model.activation={act},trainer.max_epochs=1,model.num_hid=32,")
        assert {"quickstart", f"model.activation={act}", "trainer.max_epochs=1"} <= set(record["tags"])
        assert record["config"]["model"]["activation"] == act  # the resolved config
        summary = record["summary"]
        assert summary["val/score_best"] == pytest.approx(metrics["val/score"])
        assert summary["num_parameters"] == metrics["num_parameters"]
        assert summary["train/questions_per_s"] > 0 and "train/loss" in summary
        groups = {
            json.loads(line)["run"]["run_group"]
            for line in _wandb(run, "--json").splitlines()
            if '"run"' in line
        }
        assert groups == {"quickstart"}

    out = _run(["butd.report", str(jobs[0].parent)], tmp_path)
    assert out.returncode == 0, out.stderr
    table = [line for line in out.stdout.splitlines() if line.startswith("|")]
    assert table[0].startswith("| model.activation | seeds | converged | best epoch | best val/score |")
    assert [row.split("|")[1].strip() for row in table[2:]] == acts
    for name in ("report.md", "report.csv", "learning_curves.png", "scores.png"):
        assert (jobs[0].parent / name).stat().st_size > 0


def test_a_crashing_job_is_recorded_and_the_sweep_goes_on(tmp_path, tiny_data_dir, capsys):
    """K=20 boxes on a set that stores 6 fails; K=3 trains. The command-line grid replaces the study's."""
    sweep = _run(
        ["butd.train", "-m", "experiment=[quickstart,ablation_objects]", "data.use_boxes=3,20", "seed=1111"]
        + ["logger=csv", "trainer.max_epochs=1", "model.num_hid=16", *TINY],
        tmp_path,
        BUTD_DATA_DIR=str(tiny_data_dir),
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    assert "1 jobs finished, 1 failed" in sweep.stdout + sweep.stderr
    ok, bad = _jobs(tmp_path / "outputs" / "ablation_objects" / "multiruns")
    assert ok.name.startswith("0_data.use_boxes=3,seed=1111") and (ok / "metrics.json").is_file()
    failure = json.loads((bad / "failure.json").read_text())
    assert failure["error"] == "ConfigError" and "data.use_boxes=20" in failure["message"]
    assert not (bad / "metrics.json").exists()

    assert report([str(ok.parent)]) == 0
    printed = capsys.readouterr().out
    assert "1 runs not in the table" in printed and "data.use_boxes=20 must be between 1 and the 6" in printed


def test_a_sweep_over_an_unknown_key_stops_before_any_job(tmp_path):
    out = _run(["butd.train", "-m", "experiment=quickstart", "model.nonexistent=1,2"], tmp_path)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "error: model.nonexistent is not a model option; "
        "`python -m butd.train --cfg job --package model` lists them"
    ]
    assert not list((tmp_path / "outputs").glob("**/.hydra")), "no job may have started"


def test_optuna_search_returns_the_best_trial_and_survives_failed_trials(tmp_path, tiny_data_dir):
    """Attention dropout drawn from [0, 2): trials drawing 1 or more fail (seeded: 2 of 4)."""
    space = 'hydra.sweeper.params={model.num_hid:"choice(16,32)",model.att_dropout:"interval(0.0,2.0)"}'
    out = _run(
        ["butd.train", "hparams_search=optuna", "experiment=quickstart", "hydra.sweeper.n_trials=4", space]
        + ["logger=csv", "trainer.max_epochs=1", *TINY],
        tmp_path,
        BUTD_DATA_DIR=str(tiny_data_dir),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = _jobs(tmp_path / "outputs" / "quickstart" / "multiruns")
    assert len(jobs) == 4 and all("optim.optimizer.lr=" in j.name for j in jobs)
    failed = [j for j in jobs if (j / "failure.json").is_file()]
    scores = [json.loads((j / "metrics.json").read_text())["val/score"] for j in jobs if j not in failed]
    assert failed and len(scores) + len(failed) == 4
    assert all(
        "model.att_dropout=" in json.loads((j / "failure.json").read_text())["message"] for j in failed
    )
    result = yaml.safe_load((jobs[0].parent / "optimization_results.yaml").read_text())
    assert result["best_value"] == pytest.approx(max(scores))


def test_ddp_on_two_cpu_processes_syncs_the_validation_score(tmp_path, tiny_data_dir, tiny_cfg):
    """Two gloo processes each validate half the questions; the synced val/score is the one a
    single process computes with the same weights."""
    run_dir = tmp_path / "ddp"
    out = _run(
        ["butd.train", "experiment=quickstart", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
        + ["logger=csv", "trainer.max_epochs=2", "model.num_hid=32", f"hydra.run.dir={run_dir}", *TINY]
        + ["data.batch_size=24"],  # 64 val questions: batches of 24, 24, 16 do not split evenly
        tmp_path,
        BUTD_DATA_DIR=str(tiny_data_dir),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    assert [r["epoch"] for r in history] == [0, 1] and history[-1]["train/questions_per_s"] > 0

    import pytorch_lightning as pl

    from butd.train import build
    from butd.training.module import VQAModule
    from butd.training.validate import validate_train_config

    module = VQAModule.load_from_checkpoint(run_dir / "checkpoints" / "last.ckpt", map_location="cpu")
    _, datamodule = build(validate_train_config(tiny_cfg(["experiment=quickstart", "model.num_hid=32"])))
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    (single,) = trainer.validate(module, datamodule=datamodule, verbose=False)
    assert single["val/score"] == pytest.approx(history[-1]["val/score"], abs=1e-4)
    assert single["val/upper_bound"] == pytest.approx(history[-1]["val/upper_bound"], abs=1e-4)


FAKE_SRUN = """#!/usr/bin/env bash
# Stands in for srun on one node: starts SLURM_NTASKS copies of the command with SLURM's per-task
# variables, as srun does, and fails if any task fails.
while [[ $1 == --* ]]; do shift; done
pids=()
for ((i = 0; i < SLURM_NTASKS; i++)); do SLURM_PROCID=$i SLURM_LOCALID=$i "$@" & pids+=($!); done
rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done; exit $rc
"""


def test_the_sbatch_script_runs_ddp_with_ranks_from_slurm(tmp_path, tiny_data_dir):
    """scripts/slurm_ddp.sbatch under a stand-in srun: two tasks on one node join one DDP group
    (Lightning reads the ranks from SLURM's variables, re-launching nothing) and share a run folder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "srun").chmod(0o755)
    script = Path(__file__).resolve().parents[1] / "scripts" / "slurm_ddp.sbatch"
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "butd-ddp", "SLURM_NTASKS": "2", "SLURM_NNODES": "1"}
    slurm |= {"SLURM_NTASKS_PER_NODE": "2", "SLURM_JOB_NUM_NODES": "1", "SLURM_NODEID": "0"}
    slurm |= {"SLURM_NODELIST": "localhost", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    out = subprocess.run(
        ["bash", str(script), "experiment=quickstart", "trainer.accelerator=cpu", "logger=csv"]
        + ["trainer.max_epochs=1", "model.num_hid=16", *TINY],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **slurm, "BUTD_DATA_DIR": str(tiny_data_dir), "WANDB_SILENT": "true"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    output = out.stdout + out.stderr  # Lightning's lines go through the job's log (stdout)
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in output and "GLOBAL_RANK: 1, MEMBER: 2/2" in output
    run = tmp_path / "outputs" / "train" / "slurm" / "4242"
    assert (run / "metrics.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in run.glob("train_rank*.log")) == ["train_rank0.log", "train_rank1.log"]
