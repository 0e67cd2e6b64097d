"""Resuming cannot mislead: a checkpoint is checked against the command and the cache before
Lightning loads it, `ckpt_path=last` skips checkpoints made with other settings, and a finished
run says how to extend it."""

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch

from butd.errors import CheckpointError, ConfigError
from butd.train import build
from butd.training.module import VQAModule
from butd.training.resume import choose_resume
from butd.training.validate import validate_train_config
from tests.conftest import TINY_DATA, compose_train, edited_checkpoint

RUN = ["trainer.accelerator=cpu", "logger=csv", "model.num_hid=32"]


def _cfg(tiny_data_dir: Path, logs: Path, overrides: list[str] = ()):
    return compose_train([*TINY_DATA, *RUN, *overrides], data_dir=tiny_data_dir,
                         output_dir=logs / "train" / "runs" / "new", log_dir=logs)  # fmt: skip


def _choose(cfg, ckpt_path: str):
    """`choose_resume` exactly as `butd.train` calls it, for the module the command builds."""
    module, _ = build(validate_train_config(cfg))
    return choose_resume(
        ckpt_path,
        log_dir=cfg.paths.log_dir,
        task_name=cfg.task_name,
        max_epochs=cfg.trainer.max_epochs,
        hparams=dict(module.hparams),
        metadata=module.metadata,
        data_config=module.metadata["data_config"],
    )


def test_a_fitting_checkpoint_resumes(tiny_run, tiny_data_dir, tmp_path):
    cfg = _cfg(tiny_data_dir, tmp_path / "logs", ["trainer.max_epochs=3"])
    assert _choose(cfg, str(tiny_run["ckpt"])) == str(tiny_run["ckpt"])


def test_another_activation_is_one_line_naming_the_key(tiny_run, tiny_data_dir, tmp_path):
    cfg = _cfg(tiny_data_dir, tmp_path / "logs", ["trainer.max_epochs=3", "model.activation=glu"])
    with pytest.raises(CheckpointError) as err:
        _choose(cfg, str(tiny_run["ckpt"]))
    message = str(err.value)
    assert "\n" not in message
    assert "model.activation ('relu' in the checkpoint, 'glu' now)" in message


def test_other_training_targets_or_features_are_refused(tiny_run, tiny_data_dir, tmp_path):
    cfg = _cfg(tiny_data_dir, tmp_path / "logs", ["trainer.max_epochs=3", "trick=l2_features"])
    with pytest.raises(
        CheckpointError, match=r"data.normalize_features \('none' in the checkpoint, 'l2' now\)"
    ):
        _choose(cfg, str(tiny_run["ckpt"]))
    cfg = _cfg(tiny_data_dir, tmp_path / "logs", ["trainer.max_epochs=3", "data.targets=binary"])
    with pytest.raises(CheckpointError, match=r"data.targets \('soft' in the checkpoint, 'binary' now\)"):
        _choose(cfg, str(tiny_run["ckpt"]))


def test_answers_in_another_order_are_refused_not_trained_on(tiny_run, tiny_data_dir, tmp_path):
    def reorder(c):
        c["butd"]["answers"] = c["butd"]["answers"][::-1]

    moved = edited_checkpoint(tiny_run["ckpt"], tmp_path / "other_cache.ckpt", reorder)
    cfg = _cfg(tiny_data_dir, tmp_path / "logs", ["trainer.max_epochs=3"])
    with pytest.raises(CheckpointError, match=r"answers \(the same answers in another order\)"):
        _choose(cfg, str(moved))


def test_a_checkpoint_without_metadata_is_refused_and_metadata_is_never_dropped(
    tiny_run, tiny_data_dir, tmp_path
):
    bare = edited_checkpoint(tiny_run["ckpt"], tmp_path / "bare.ckpt", lambda c: c.pop("butd"))
    cfg = _cfg(tiny_data_dir, tmp_path / "logs", ["trainer.max_epochs=3"])
    with pytest.raises(CheckpointError, match=r"vocabulary and answers \(the checkpoint has none"):
        _choose(cfg, str(bare))
    module = VQAModule(**torch.load(bare, weights_only=True)["hyper_parameters"])
    module.metadata = {"vocab": ["a"], "answers": ["yes"]}
    module.on_load_checkpoint({})
    assert module.metadata == {"vocab": ["a"], "answers": ["yes"]}


def test_a_finished_run_says_how_to_extend_it(tiny_run, tiny_data_dir, tmp_path):
    cfg = _cfg(tiny_data_dir, tmp_path / "logs", ["trainer.max_epochs=2"])
    with pytest.raises(CheckpointError, match=r"finished its 2 epochs .* trainer.max_epochs=4"):
        _choose(cfg, str(tiny_run["ckpt"]))


def test_last_skips_newer_checkpoints_of_other_settings(tiny_run, tiny_data_dir, tmp_path, caplog):
    logs = tmp_path / "logs"
    runs = logs / "train" / "runs"
    mine = runs / "a" / "checkpoints" / "last.ckpt"
    mine.parent.mkdir(parents=True)
    shutil.copy(tiny_run["ckpt"], mine)

    def other_model(c):  # a sweep job of another width, newer
        c["hyper_parameters"]["model"]["classifier_dropout"] = 0.3
        c["butd"]["data_config"]["batch_size"] = 8

    newer = edited_checkpoint(tiny_run["ckpt"], runs / "b" / "checkpoints" / "last.ckpt", other_model)
    os.utime(mine, (1, 1))
    cfg = _cfg(tiny_data_dir, logs, ["trainer.max_epochs=3"])
    with caplog.at_level(logging.INFO, logger="butd.training.resume"):
        assert _choose(cfg, "last") == str(mine)
    assert "resuming from" in caplog.text and "skipped 1 newer made with other settings" in caplog.text

    mine.unlink()
    with pytest.raises(ConfigError) as err:
        _choose(cfg, "last")
    assert str(newer) in str(err.value)
    assert "model.classifier_dropout (0.3 in the checkpoint, 0.5 now)" in str(err.value)
    assert "data.batch_size (8 in the checkpoint, 16 now)" in str(err.value)


def test_another_debias_method_or_mode_is_refused_naming_the_key(tiny_run, tiny_data_dir, tmp_path):
    cfg = _cfg(tiny_data_dir, tmp_path / "logs", ["trainer.max_epochs=3", "debias=lmh"])
    with pytest.raises(CheckpointError, match=r"debias.name \('none' in the checkpoint, 'lmh' now\)"):
        _choose(cfg, str(tiny_run["ckpt"]))

    def gge_dq_tog(c):
        c["hyper_parameters"]["debias"] |= {"name": "gge_dq", "mode": "tog"}

    tog = edited_checkpoint(tiny_run["ckpt"], tmp_path / "tog.ckpt", gge_dq_tog)
    cfg = _cfg(tiny_data_dir, tmp_path / "logs", ["trainer.max_epochs=3", "debias=gge_dq_iter"])
    with pytest.raises(CheckpointError) as err:
        _choose(cfg, str(tog))
    assert "debias.mode ('tog' in the checkpoint, 'iter' now)" in str(err.value)
    assert "debias.name" not in str(err.value)


def test_a_checkpoint_from_before_debias_mode_resumes(tiny_run, tiny_data_dir, tmp_path):
    def older(c):
        del c["hyper_parameters"]["debias"]["mode"]

    ckpt = edited_checkpoint(tiny_run["ckpt"], tmp_path / "older.ckpt", older)
    cfg = _cfg(tiny_data_dir, tmp_path / "logs", ["trainer.max_epochs=3"])
    assert _choose(cfg, str(ckpt)) == str(ckpt)


def _old_rubi(c):
    """RUBi as butd defined it before its authors' c_1 / c_2 branch: one hidden layer."""
    c["hyper_parameters"]["debias"] |= {"name": "rubi"}
    hid, answers = c["hyper_parameters"]["model"]["num_hid"], c["hyper_parameters"]["num_answers"]
    c["state_dict"] |= {
        "debias.question_only.0.weight": torch.zeros(hid, hid),
        "debias.question_only.0.bias": torch.zeros(hid),
        "debias.question_only.2.weight": torch.zeros(answers, hid),
        "debias.question_only.2.bias": torch.zeros(answers),
    }


def test_debias_parameters_of_an_earlier_definition_refuse_resume_but_evaluate(
    tiny_run, tiny_data_dir, tmp_path
):
    from butd.evaluation.checkpoint import load_checkpoint

    old = edited_checkpoint(tiny_run["ckpt"], tmp_path / "old_rubi.ckpt", _old_rubi)
    cfg = _cfg(tiny_data_dir, tmp_path / "logs", ["trainer.max_epochs=3", "debias=rubi"])
    with pytest.raises(CheckpointError) as err:
        _choose(cfg, str(old))
    message = str(err.value)
    assert (
        "\n" not in message and "debias=rubi's parameters (the checkpoint's ['debias.question_only" in message
    )
    assert "made by an earlier definition of the method" in message
    # inference reads the model only: the checkpoint still evaluates
    ckpt = load_checkpoint(old)
    assert ckpt.module.debias_cfg.name == "rubi" and ckpt.answers


def _trained(tiny_data_dir: Path, logs: Path, run: str, overrides: list[str]) -> dict:
    from butd.train import train

    cfg = compose_train([*TINY_DATA, *RUN, *overrides], data_dir=tiny_data_dir,
                        output_dir=logs / "train" / "runs" / run, log_dir=logs)  # fmt: skip
    return train(cfg)


@pytest.mark.slow
def test_ckpt_path_last_resumes_the_run_of_the_same_seed(tiny_data_dir, tmp_path):
    """Runs with seed=1 and then seed=2: `seed=1 ckpt_path=last` resumes seed 1's run, not the newer
    seed-2 checkpoint (its seed differs, as its weights and batches do)."""
    logs = tmp_path / "logs"
    one = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2"]
    _trained(tiny_data_dir, logs, "seed1", [*one, "seed=1"])
    _trained(tiny_data_dir, logs, "seed2", [*one, "seed=2"])
    cfg = _cfg(tiny_data_dir, logs, ["trainer.max_epochs=2", "+trainer.limit_train_batches=2", "seed=1"])
    assert _choose(cfg, "last") == str(logs / "train" / "runs" / "seed1" / "checkpoints" / "last.ckpt")
    third = _cfg(tiny_data_dir, logs, ["trainer.max_epochs=2", "+trainer.limit_train_batches=2", "seed=3"])
    with pytest.raises(ConfigError, match=r"differs in: seed \(2 in the checkpoint, 3 now\)"):
        _choose(third, "last")


@pytest.mark.slow
def test_a_lower_learning_rate_resumes_when_named_in_resume_overrides_and_is_recorded(
    tiny_data_dir, tmp_path
):
    """The divergence advice: resume with a lower lr. Refused without `resume_overrides`; with it the
    new lr is the optimizer's (not the restored state's) and metrics.json records the change."""
    logs = tmp_path / "logs"
    one = ["+trainer.limit_train_batches=2"]
    _trained(tiny_data_dir, logs, "first", [*one, "trainer.max_epochs=1"])
    last = logs / "train" / "runs" / "first" / "checkpoints" / "last.ckpt"
    lower = [*one, "trainer.max_epochs=2", "optim.optimizer.lr=0.0002", f"ckpt_path={last}"]
    with pytest.raises(CheckpointError, match=r"optim.optimizer.lr \(0.002 in the checkpoint, 0.0002 now\)"):
        _trained(tiny_data_dir, logs, "refused", lower)
    _trained(tiny_data_dir, logs, "lower", [*lower, "resume_overrides=[optim.optimizer.lr]"])
    run = logs / "train" / "runs" / "lower"
    record = json.loads((run / "metrics.json").read_text())
    assert record["resume_overrides"] == [
        {"key": "optim.optimizer.lr", "checkpoint": 0.002, "now": 0.0002, "checkpoint_path": str(last)}
    ]
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["optimizer_states"][0]["param_groups"][0]["lr"] == 0.0002
    with pytest.raises(ConfigError, match="resume_overrides names 'model.num_hid'"):
        _trained(tiny_data_dir, logs, "model", [*lower, "resume_overrides=[model.num_hid]"])
    # the clip the divergence advice also names: compared, and allowed the same way
    clip = [*one, "trainer.max_epochs=2", "optim.clip_grad_norm=0.1", f"ckpt_path={last}"]
    with pytest.raises(CheckpointError, match=r"optim.clip_grad_norm \(0.25 in the checkpoint, 0.1 now\)"):
        _trained(tiny_data_dir, logs, "clip", clip)
