"""The entry points as a user runs them: real subprocesses, real Hydra command lines."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_DATA

pytestmark = pytest.mark.slow  # the CLI as subprocesses


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WANDB_SILENT": "true", **env},
    )


def test_prepare_then_train_from_the_command_line(tmp_path):
    data = [o for o in TINY_DATA if o != "data=synthetic"]
    prep = _run(["butd.prepare", "data=synthetic", *data], tmp_path, BUTD_DATA_DIR=str(tmp_path / "d"))
    assert prep.returncode == 0, prep.stderr
    assert "answers" in prep.stdout and "train" in prep.stdout  # the summary table
    assert (tmp_path / "d" / "synthetic" / "cache" / "manifest.json").is_file()

    run = _run(
        ["butd.train", "experiment=quickstart", *data, "trainer.max_epochs=2", "model.num_hid=32"],
        tmp_path,
        BUTD_DATA_DIR=str(tmp_path / "d"),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (out,) = (tmp_path / "outputs" / "quickstart" / "runs").iterdir()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epoch"] == 1 and metrics["val/score"] is not None
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert list((out / "wandb").glob("offline-run-*")), "W&B should have recorded an offline run"
    assert (out / "csv" / "metrics.csv").is_file()


def test_prepare_takes_a_studys_experiment_and_train_reads_what_it_prepared(tmp_path):
    """`butd.prepare experiment=standin` prepares the stand-in's own data (its folder, its priors):
    the run of the same experiment finds that cache complete and matching, and builds nothing."""
    env = {"BUTD_DATA_DIR": str(tmp_path / "d")}
    prep = _run(["butd.prepare", "experiment=standin"], tmp_path, **env)
    assert prep.returncode == 0, prep.stderr[-3000:]
    manifest = tmp_path / "d" / "standin" / "synthetic" / "cache" / "manifest.json"
    assert manifest.is_file() and not (tmp_path / "d" / "synthetic").exists()
    before = manifest.read_bytes()

    run = _run(
        ["butd.train", "experiment=standin", "trainer.max_epochs=1", "model.num_hid=32"], tmp_path, **env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "matches data=synthetic: nothing to do" in run.stdout + run.stderr
    assert manifest.read_bytes() == before


def test_train_without_a_prepared_cache_explains_what_to_do(tmp_path):
    run = _run(["butd.train", "data=vqa2"], tmp_path, BUTD_DATA_DIR=str(tmp_path / "empty"))
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "v2_mscoco_train2014_annotations.json" in run.stderr
    assert "python -m butd.prepare data=vqa2" in run.stderr


def test_prepare_names_a_bad_row_then_skips_it_when_asked(tmp_path):
    """Worker processes under `python -m butd.prepare`; the stop keeps the work for the rerun."""
    from butd.config.data import DataConfig
    from butd.preparation.build import ensure_raw
    from tests.conftest import compose_train

    data = [o for o in TINY_DATA if o != "data=synthetic"]
    data += ["data.prepare_workers=2", "data.prepare_chunk_mb=0.004"]
    cfg = DataConfig.from_dict(
        compose_train(TINY_DATA, data_dir=tmp_path / "d", output_dir=tmp_path / "x").data
    )
    ensure_raw(cfg, progress=False)
    tsv = cfg.raw_path / cfg.features[0]
    lines = tsv.read_bytes().split(b"\n")
    fields = lines[24].split(b"\t")
    fields[3] = b"7"  # the row says 7 boxes, its data holds 6
    lines[24] = b"\t".join(fields)
    tsv.write_bytes(b"\n".join(lines))

    env = {"BUTD_DATA_DIR": str(tmp_path / "d")}
    stopped = _run(["butd.prepare", "data=synthetic", *data], tmp_path, **env)
    assert stopped.returncode == 1 and "Traceback" not in stopped.stderr
    assert f"synthetic_trainval_6.tsv:25: image {int(fields[0])}: boxes hold 24 floats" in stopped.stderr
    assert (cfg.cache_path / "convert.partial.json").is_file()

    skipped = _run(["butd.prepare", "data=synthetic", *data, "data.skip_bad_rows=true"], tmp_path, **env)
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    assert "1 bad feature rows skipped" in " ".join(skipped.stdout.split())  # the summary wraps
    manifest = json.loads((cfg.cache_path / "manifest.json").read_text())
    assert manifest["conversion"]["resumed_from_chunk"] > 0 and manifest["counts"]["skipped_rows"] == 1


#: lines every run printed before they were silenced (`butd.config.output`)
NOISE = (
    "GPU available",
    "TPU available",
    "💡 Tip",
    "LeafSpec",
    "anonymous setting",
    "Run history",
    "Run summary",
    "Seed set to",
    "Total params",
)


def test_a_config_error_answers_before_torch_loads_and_leaves_a_failed_run(tmp_path):
    from butd.reporting.runs import read_runs

    logs = tmp_path / "logs"
    args = ["-X", "importtime", "-m", "butd.train", "model.activation=swish", f"paths.log_dir={logs}"]
    run = subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 1
    assert run.stderr.splitlines()[-1] == (
        "error: model.activation='swish' is invalid; expected one of ['relu', 'glu', 'gated_tanh']"
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if "|" in line}
    assert "hydra" in imported and not imported & {"torch", "pytorch_lightning", "lightning_fabric"}
    (failed,) = read_runs([logs])
    assert failed.status == "failed" and "model.activation='swish' is invalid" in failed.detail


def test_a_mistyped_key_gets_the_closest_option_in_one_line_before_torch_loads(tmp_path):
    args = ["-X", "importtime", "-m", "butd.train", "model.activaton=relu", f"paths.log_dir={tmp_path}"]
    run = subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 1
    said = [line for line in (run.stdout + run.stderr).splitlines() if "|" not in line]
    assert said == ["error: model.activaton is not a model option; did you mean model.activation?"]
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if "|" in line}
    assert "hydra" in imported and not imported & {"torch", "pytorch_lightning", "lightning_fabric"}
    group = _run(["butd.train", "model=concatt", f"paths.log_dir={tmp_path}"], tmp_path)
    assert group.returncode == 1 and group.stdout == ""
    assert group.stderr.splitlines() == [
        "error: model=concatt is not a model option (concat, newatt, paper, question_only); "
        "did you mean model=concat?"
    ]


def test_a_piped_run_is_quiet_and_names_its_files_on_whole_lines(tiny_data_dir, tmp_path):
    logs = tmp_path / ("a_folder_name_long_enough_that_an_80_column_wrap_would_cut_every_path_in_it_" * 2)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "WANDB_SILENT", "WANDB_QUIET")}
    args = [*TINY_DATA, "model.num_hid=16", "trainer.accelerator=cpu", f"paths.data_dir={tiny_data_dir}"]
    run = subprocess.run(
        [sys.executable, "-m", "butd.train", *args, "trainer.max_epochs=1", f"paths.log_dir={logs}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    output = run.stdout + run.stderr
    assert [n for n in NOISE if n in output] == []
    assert output.count("matches data=synthetic: nothing to do") == 1  # the cache checked once
    (out,) = (logs / "train" / "runs").iterdir()
    lines = run.stdout.splitlines()
    for path in (out / "metrics.json", out / "checkpoints" / "last.ckpt", out / "csv"):
        assert any(line.endswith(f"wrote {path.resolve()}") for line in lines), path
    # in a pipe no bars: the epoch's metrics on one line
    assert "\r" not in output and "Epoch 0:" not in output
    (epoch,) = [line for line in lines if line.startswith("epoch 0/0: ")]
    assert "val/score " in epoch and epoch.endswith(" s)"), epoch

    # verbose=true brings the libraries' own lines back
    short = ["trainer.max_epochs=1", "++trainer.limit_train_batches=1", "++trainer.limit_val_batches=1"]
    verbose = subprocess.run(
        [sys.executable, "-m", "butd.train", *args, *short, "verbose=true", f"paths.log_dir={logs}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert "GPU available" in verbose.stdout + verbose.stderr
    assert "wandb: W&B syncing is set to `offline`" in verbose.stderr  # W&B's banner


def test_quickstart_cp_with_the_default_loggers_tests_and_logs_whole_lines(tmp_path):
    """The README's `experiment=quickstart_cp debias=gge` with the default loggers (CSV and W&B
    offline), its output going to a file as in a SLURM log: test/* in metrics.json and in W&B,
    the machine recorded and said first, and whole lines only, in that file and in train.log."""
    import torch

    from tests.test_sweep_cli import _wandb

    # batches of 8: more batches than log_every_n_steps, or Lightning warns (on a tiny set only)
    data = [o for o in TINY_DATA if o not in ("data=synthetic", "data.batch_size=16")] + ["data.batch_size=8"]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "WANDB_SILENT", "WANDB_QUIET")}
    args = ["experiment=quickstart_cp", "debias=gge", *data, "trainer.max_epochs=2"]
    args += [f"paths.log_dir={tmp_path / 'o'}", "paths.data_dir=d"]
    log = tmp_path / "slurm-1234.out"
    with log.open("w") as out:
        run = subprocess.run(
            [sys.executable, "-m", "butd.train", *args],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=600,
        )  # fmt: skip
    text = log.read_text()
    assert run.returncode == 0, text[-3000:]
    (folder,) = (tmp_path / "o" / "quickstart_cp" / "runs").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert {"test/score", "test/vqa_acc", "test/vqa_acc/yes_no"} <= set(metrics)
    machine = metrics["machine"]
    assert machine["cpu"] and machine["device"] == "cpu" and machine["torch"] == torch.__version__
    assert machine["torch_threads"] >= 1 and machine["cpu_cores"] == os.cpu_count()
    (wandb_run,) = (folder / "wandb").glob("offline-run-*")
    record = json.loads(_wandb(wandb_run, "--summary", "--json"))
    assert record["state"] == "finished" and record["exit_code"] == 0
    assert record["summary"]["test/score"] == pytest.approx(metrics["test/score"])
    assert record["config"]["machine"] == machine

    lines = text.splitlines()
    assert lines[0] == (
        f"machine: {machine['cpu']} ({machine['cpu_cores']} cores), torch {machine['torch']} with "
        f"{machine['torch_threads']} threads, CUDA {machine['cuda'] or 'none'}, device cpu"
    )
    for name, content in (("the output", text), ("train.log", (folder / "train.log").read_text())):
        assert "\r" not in content and "\x1b" not in content, name  # no progress-bar frames
        # measured as in a checkout at /home/user/butd (pytest's folder is ~60 characters longer)
        widths = [len(line.replace(str(tmp_path), "/home/user/butd")) for line in content.splitlines()]
        assert max(widths) <= 200, name
        assert re.findall(r"\bepoch (\d+/\d+): train/", content) == ["0/1", "1/1"], name
        assert "wandb:" not in content, name  # no banner without verbose=true


def test_compile_without_a_compiler_says_so_and_offers_eager(tiny_data_dir, tmp_path):
    """On a CPU, torch.compile needs a C++ compiler: with none (CXX names no program) the run
    stops with one line naming the cause and the eager option, not a compiler traceback."""
    args = [*TINY_DATA, "model.num_hid=16", "trainer.accelerator=cpu", f"paths.data_dir={tiny_data_dir}"]
    run = _run(
        ["butd.train", *args, "compile=true", "trainer.max_epochs=1", f"paths.log_dir={tmp_path / 'logs'}"],
        tmp_path,
        CXX=str(tmp_path / "no-such-compiler"),
    )
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert "compile=true failed" in run.stderr and "compile=false" in run.stderr
    assert "no-such-compiler" in run.stderr  # the cause, as torch states it


def test_impossible_splits_and_epochs_are_refused_before_any_work(tiny_data_dir, tmp_path):
    """A test split without annotations used to train fully and then fail with KeyError 'target';
    `trainer.max_epochs=0` recorded test metrics of untrained weights. Each is one line, before
    torch loads and before the run writes anything but its config."""
    from butd.errors import ConfigError
    from butd.train import train
    from tests.conftest import compose_train

    logs = tmp_path / "logs"
    args = ["-X", "importtime", "-m", "butd.train", *TINY_DATA, f"paths.data_dir={tiny_data_dir}"]
    run = subprocess.run(
        [sys.executable, *args, f"paths.log_dir={logs}", "data.test_split=test2015"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.splitlines()[-1] == (
        "error: data.test_split=test2015 names ['test2015'], which has no annotations (data.annotations "
        "has ['train', 'val']), so it cannot be tested on; use an annotated split (`python -m butd.predict "
        "split=...` answers an unannotated one for EvalAI)"
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "pytorch_lightning"}
    (folder,) = (logs / "train" / "runs").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == [".hydra", "failure.json", "train.log"]
    for override, words in (
        ("data.val_split=test2015", "data.val_split=test2015 names ['test2015'], which has no annotations"),
        ("data.train_splits=[train,test-dev2015]", "cannot be trained on"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 trains nothing"),
        ("+trainer.max_steps=0", "trainer.max_steps=0 trains nothing"),
        ("+trainer.limit_val_batches=0", "trainer.limit_val_batches=0 never validates"),
        (
            "+trainer.check_val_every_n_epoch=31",
            "trainer.check_val_every_n_epoch=31 with trainer.max_epochs=30",
        ),
    ):
        cfg = compose_train([*TINY_DATA, override], data_dir=tiny_data_dir, output_dir=tmp_path / "run")
        with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
            train(cfg)
        assert not (tmp_path / "run").exists()
