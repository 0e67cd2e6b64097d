"""Nothing read from a file is evaluated or trusted before it is checked: a checkpoint's data
section is never resolved by OmegaConf, its callback state is restored only as butd writes it,
its metadata must fit its weights, and bad command values are one line.

Each crafted file is a copy of the session's trained checkpoint (`tiny_run`) with one entry
changed; the slow tests run the real commands in subprocesses.
"""

import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from butd.config.plain import InterpolationError, resolve_references
from butd.errors import CheckpointError, UserError
from butd.evaluation.checkpoint import load_checkpoint
from butd.training.callback_states import check_callback_states
from tests.conftest import TINY_DATA, edited_checkpoint

RUN = ["trainer.accelerator=cpu", "logger=csv", "model.num_hid=32"]


def _butd(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=environment
    )


def _one_error_line(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    lines = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, run.stderr[-3000:]
    return lines[0]


def _best_state(checkpoint: dict) -> dict:
    return next(
        v for k, v in checkpoint["callbacks"].items() if k.startswith("RunCheckpoint{'monitor': 'val/score'")
    )


# ---------------------------------------------------------------------------------------------
# Case 1: interpolations in a checkpoint's data section


def test_plain_references_are_substituted_and_everything_else_refused():
    paths = {"paths": lambda key: {"data_dir": "/data"}[key]}
    section = {
        "cache_dir": "${paths.data_dir}/vqa2/cache",
        "num_boxes": "${data.synthetic.num_boxes}",
        "features": ["x_${data.synthetic.num_boxes}.tsv"],
        "synthetic": {"num_boxes": 6},
    }
    plain = resolve_references(section, name="data", lookup=paths, source="f.ckpt")
    assert plain["cache_dir"] == "/data/vqa2/cache"
    assert plain["num_boxes"] == 6  # a whole-string reference keeps the value's type, as in OmegaConf
    assert plain["features"] == ["x_6.tsv"]
    for value in [
        "${oc.env:SECRET}",
        "${butd.new_folder:/tmp/x}/c",
        "${hydra:runtime.cwd}",
        "${model.num_hid}",
        "${data.${paths.data_dir}}",
        "\\${paths.data_dir}",
        "${.relative}",
        "${paths.data_dir",
    ]:
        with pytest.raises(InterpolationError) as err:
            resolve_references({"cache_dir": value}, name="data", lookup=paths, source="f.ckpt")
        message = str(err.value)
        assert message.startswith("f.ckpt: data.cache_dir=") and "\n" not in message, message
    with pytest.raises(InterpolationError, match="cycle"):
        resolve_references({"a": "${data.b}", "b": "${data.a}"}, name="data", lookup=paths, source="f")


@pytest.mark.slow
def test_a_checkpoint_data_section_is_never_resolved(tiny_run, tiny_data_dir, tmp_path):
    """`${butd.new_folder:DIR}` creates nothing and `${oc.env:NAME}` leaks nothing, in predict,
    evaluate and visualize: each refuses the file in one line naming the file and the key."""
    made = tmp_path / "made_by_the_file"
    secret = "s3cr3t-value-4217"
    folder = edited_checkpoint(
        tiny_run["ckpt"],
        tmp_path / "folder.ckpt",
        lambda c: c["butd"]["data_config"].update(cache_dir=f"${{butd.new_folder:{made}}}/c"),
    )
    env = edited_checkpoint(
        tiny_run["ckpt"],
        tmp_path / "env.ckpt",
        lambda c: c["butd"]["data_config"].update(cache_dir="${oc.env:BUTD_TEST_SECRET}"),
    )
    paths = [f"paths.data_dir={tiny_data_dir}", f"paths.log_dir={tmp_path / 'logs'}"]
    runs = {
        "predict": ("butd.predict", f"ckpt_path={folder}", "split=val", *paths),
        "evaluate": ("butd.evaluate", f"ckpt_path={env}", "split=val", *paths),
        "visualize": ("butd.visualize", f"ckpt_path={env}", "image_id=1", "question=what", *paths),
    }
    for name, args in runs.items():
        run = _butd(*args, f"hydra.run.dir={tmp_path / name}", cwd=tmp_path, env={"BUTD_TEST_SECRET": secret})
        line = _one_error_line(run)
        assert "data.cache_dir=" in line and "looks like an OmegaConf interpolation" in line, line
        assert str(folder if name == "predict" else env) in line
        assert secret not in run.stdout + run.stderr
        for written in (tmp_path / name).rglob("*"):
            if written.is_file():
                assert secret not in written.read_text(errors="replace"), written
    assert not made.exists()


# ---------------------------------------------------------------------------------------------
# Case 2: resume restores only the callback state butd writes


def test_callback_states_butd_never_writes_are_refused(tiny_run, tmp_path):
    victim = tmp_path / "victim.txt"

    def outside(c):
        state = _best_state(c)
        state.update(dirpath=str(tmp_path), best_k_models={str(victim): torch.tensor(99.0)})

    def not_finite(c):
        state = _best_state(c)
        state["best_k_models"] = {p: torch.tensor(math.nan) for p in state["best_k_models"]}

    def unrecorded(c):
        state = _best_state(c)
        state["best_k_models"] = {p: torch.tensor(99.0) for p in state["best_k_models"]}

    def history(c):
        c["callbacks"]["MetricsJSON"]["history"][0]["val/score"] = "abc"

    def rng(c):
        c["callbacks"]["RNGState"]["python"] = (3, (1, 2), None)

    def order(c):
        c["VQADataModule"]["train_order"] = {"epoch": 0, "batches_done": -5}

    cases = {
        outside: "victim.txt', not a checkpoint file",
        not_finite: "not a finite number",
        unrecorded: "which the run's history never recorded",
        history: "history[0]['val/score']='abc' is not a number",
        rng: "its RNGState state is not the random number generators' states",
        order: "its data module state train_order={'epoch': 0, 'batches_done': -5}",
    }
    for edit, words in cases.items():
        checkpoint = torch.load(tiny_run["ckpt"], map_location="cpu", weights_only=True)
        edit(checkpoint)
        with pytest.raises(CheckpointError) as err:
            check_callback_states(checkpoint, tmp_path / "x.ckpt")
        assert words in str(err.value) and "refused to resume from" in str(err.value), str(err.value)
    checkpoint = torch.load(tiny_run["ckpt"], map_location="cpu", weights_only=True)
    checkpoint["callbacks"]["SomethingElse"] = {"x": 1}
    check_callback_states(checkpoint, tiny_run["ckpt"])  # butd's own states pass; others are dropped
    assert "SomethingElse" not in checkpoint["callbacks"]


@pytest.mark.slow
def test_a_resume_never_links_a_file_its_checkpoint_names(tiny_run, tiny_data_dir, tmp_path):
    """A checkpoint naming /any/victim.txt as its best (score 99) is refused before training; nothing
    is linked and the victim is untouched."""
    victim = tmp_path / "victim.txt"
    victim.write_text("not a checkpoint\n")

    def edit(c):
        state = _best_state(c)
        score = torch.tensor(99.0)
        state.update(
            dirpath=str(tmp_path),
            best_k_models={str(victim): score},
            best_model_path=str(victim),
            best_model_score=score,
            kth_best_model_path=str(victim),
            kth_value=score,
        )

    crafted = edited_checkpoint(tiny_run["ckpt"], tmp_path / "crafted" / "last.ckpt", edit)
    out = tmp_path / "resumed"
    run = _butd(
        "butd.train",
        *TINY_DATA,
        *RUN,
        "trainer.max_epochs=3",
        f"ckpt_path={crafted}",
        f"paths.data_dir={tiny_data_dir}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    line = _one_error_line(run)
    assert line.startswith(f"error: refused to resume from {crafted}: its RunCheckpoint state best_k_models")
    assert not any(out.rglob("victim.txt")) and victim.stat().st_nlink == 1
    assert victim.read_text() == "not a checkpoint\n"


@pytest.mark.slow
def test_a_moved_run_resumes_with_its_best_from_its_own_folder(tiny_run, tiny_cfg, tmp_path, caplog):
    """The best checkpoints are read by name from the resumed checkpoint's folder, not from the
    absolute folder its state records: a run folder moved elsewhere keeps its best."""
    from butd.train import train

    moved = tmp_path / "moved"
    shutil.copytree(tiny_run["dir"], moved)
    gone = tmp_path / "elsewhere" / "checkpoints"  # where the run was when it was written

    def recorded_elsewhere(c):
        for key, state in c["callbacks"].items():
            if key.startswith("RunCheckpoint"):
                names = {str(gone / Path(p).name): v for p, v in state["best_k_models"].items()}
                state.update(dirpath=str(gone), best_k_models=names)
                for k in ("best_model_path", "kth_best_model_path", "last_model_path"):
                    state[k] = str(gone / Path(state[k]).name) if state.get(k) else ""

    last = edited_checkpoint(
        moved / "checkpoints" / "last.ckpt", moved / "checkpoints" / "last.ckpt", recorded_elsewhere
    )
    cfg = tiny_cfg([*RUN, "trainer.max_epochs=3", f"ckpt_path={last}"], run="r")
    with caplog.at_level(logging.INFO, logger="butd.training"):
        train(cfg)
    carried = (
        f"resumed with the best val/score {tiny_run['metrics']['val/score']:.4f} from {moved / 'checkpoints'}"
    )
    assert carried in caplog.text and "are gone" not in caplog.text, caplog.text


# ---------------------------------------------------------------------------------------------
# Case 10: checkpoint metadata against the weights and bounds


def test_checkpoint_metadata_must_fit_its_weights(tiny_run, tmp_path):
    cases = {
        "max_question_len": (
            lambda c: c["butd"]["data"]["settings"].update(max_question_len=10**10),
            "['max_question_len']=10000000000 is invalid",
        ),
        "answers": (
            lambda c: c["butd"].update(answers=c["butd"]["answers"][:3]),
            "lists 3 answers (3 distinct), but the model's output has",
        ),
        "vocab": (
            lambda c: c["butd"]["vocab"].update(words=c["butd"]["vocab"]["words"][:-1]),
            "but the model's word embedding has",
        ),
        "ntoken": (
            lambda c: c["hyper_parameters"].update(ntoken=10**10),
            "model.w_emb.emb.weight is [45, 50] in the file, [10000000001, 50]",
        ),
        "hparams": (
            lambda c: c["hyper_parameters"]["model"].update(activation="${oc.env:HOME}"),
            "(hyper_parameters): model.activation='${oc.env:HOME}' looks like",
        ),
    }
    for name, (edit, words) in cases.items():
        path = edited_checkpoint(tiny_run["ckpt"], tmp_path / f"{name}.ckpt", edit)
        with pytest.raises(UserError) as err:  # a CheckpointError, or an InterpolationError
            load_checkpoint(path)
        assert words in str(err.value) and str(path) in str(err.value), str(err.value)


@pytest.mark.slow
def test_predict_refuses_metadata_instead_of_allocating_it(tiny_run, tiny_data_dir, tmp_path):
    """The real command on `max_question_len=1e10` (a MemoryError before); the in-process test above
    covers the other keys."""
    long = edited_checkpoint(
        tiny_run["ckpt"],
        tmp_path / "long.ckpt",
        lambda c: c["butd"]["data"]["settings"].update(max_question_len=10**10),
    )
    run = _butd(
        "butd.predict",
        f"ckpt_path={long}",
        "image_id=1",
        "question=what color",
        f"paths.data_dir={tiny_data_dir}",
        f"hydra.run.dir={tmp_path / 'out'}",
        cwd=tmp_path,
    )
    line = _one_error_line(run)
    assert line.startswith(
        f"error: ckpt_path={long}: checkpoint['butd']['data']['settings']['max_question_len']"
    )


# ---------------------------------------------------------------------------------------------
# Case 16: a bad command value, a missing one, a read-only folder: one line each


@pytest.fixture()
def read_only(tmp_path):
    """`make(folder)`: `folder` made read-only, by a read-only bind mount where this runs as root (root
    writes through permissions), else by its permissions; undone afterwards."""
    mounts: list[Path] = []

    def make(folder: Path) -> Path:
        if os.geteuid() != 0:
            for p in [folder, *folder.rglob("*")]:
                p.chmod(p.stat().st_mode & ~0o222)
            return folder
        view = tmp_path / f"ro{len(mounts)}"
        view.mkdir()
        done = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(view)], capture_output=True)
        if done.returncode:
            pytest.skip(f"no read-only bind mount here ({done.stderr.decode().strip()})")
        mounts.append(view)
        return view

    yield make
    for view in mounts:
        subprocess.run(["umount", "-l", str(view)], check=False)


@pytest.mark.slow
def test_bad_and_missing_values_and_a_read_only_folder_are_one_line(
    tiny_run, tiny_data_dir, tmp_path, read_only
):
    paths = [f"paths.data_dir={tiny_data_dir}"]
    run = _butd(
        "butd.predict",
        f"ckpt_path={tiny_run['ckpt']}",
        "image_id=abc",
        "question=what",
        *paths,
        f"hydra.run.dir={tmp_path / 'p'}",
        cwd=tmp_path,
    )
    assert (
        _one_error_line(run)
        == "error: image_id='abc' is invalid; expected an image id, an integer such as 42"
    )
    run = _butd(
        "butd.visualize",
        f"ckpt_path={tiny_run['ckpt']}",
        "question=what",
        *paths,
        f"hydra.run.dir={tmp_path / 'v'}",
        cwd=tmp_path,
    )
    assert _one_error_line(run) == "error: image_id is required; give image_id=VALUE on the command line"
    run = _butd("butd.visualize", f"ckpt_path={tiny_run['ckpt']}", "image_id=1", "question=what", "top_k=abc",
                *paths, f"hydra.run.dir={tmp_path / 'k'}", cwd=tmp_path)  # fmt: skip
    assert _one_error_line(run).startswith("error: top_k='abc' is invalid; expected an integer >= 1")
    run = _butd(
        "butd.prepare", *TINY_DATA, "force=maybe", *paths, f"hydra.run.dir={tmp_path / 'f'}", cwd=tmp_path
    )
    assert (
        _one_error_line(run) == "error: force='maybe' is invalid; expected true (rebuild the cache) or false"
    )

    data = tmp_path / "data"
    shutil.copytree(tiny_data_dir, data, symlinks=True)
    view = read_only(data)
    before = {p: p.stat().st_mtime_ns for p in data.rglob("*") if p.is_file()}
    run = _butd(
        "butd.prepare",
        *TINY_DATA,
        "force=true",
        f"paths.data_dir={view}",
        f"hydra.run.dir={tmp_path / 'prep'}",
        cwd=tmp_path,
    )
    line = _one_error_line(run)
    assert line.startswith(f"error: cannot open {view}/synthetic/cache/") and "paths.data_dir" in line, line
    assert before == {p: p.stat().st_mtime_ns for p in data.rglob("*") if p.is_file()}
