"""Bad config values fail before any data is read or written, with the key in the message."""

import os
import re
import subprocess
import sys

import pytest

from butd.errors import ConfigError
from butd.train import train
from tests.conftest import TINY_DATA, compose_train

BAD_VALUES = [
    ("model.num_hid=-3", r"model.num_hid=-3 is invalid; expected a positive integer"),
    ("model.att_dropout=1.0", r"model.att_dropout=1.0 is invalid; expected a value in \[0, 1\)"),
    ("model.classifier_dropout=-0.1", r"model.classifier_dropout=-0.1 is invalid"),
    ("+model.num_hidden=3", r"unknown model config key 'num_hidden'; valid keys: \[.*'num_hid'"),
    ("data.batch_size=0", r"data.batch_size=0 is invalid; expected an integer > 0"),
    ("data.num_workers=-1", r"data.num_workers=-1 is invalid"),
    ("+data.shuffle=true", r"unknown data config key 'shuffle'; valid keys: \[.*'batch_size'"),
    ("data.vocab_splits=[train,test]", r"data.vocab_splits names splits \['test'\]"),
    ("optim.optimizer.lr=0", r"optim.optimizer.lr=0 is invalid; expected a number > 0"),
    ("optim.optimizer.lr=fast", r"optim.optimizer.lr='fast' is invalid; expected a number"),
    ("optim.optimizer.betas=[0.9,1.5]", r"optim.optimizer.betas=\[0.9, 1.5\] is invalid"),
    ("+optim.optimizer.momentum=0.9", r"optim.optimizer.momentum is not an argument of torch.optim.Adamax"),
    ("optim.optimizer._target_=torch.optim.Adamx", r"optim.optimizer._target_='torch.optim.Adamx' cannot"),
    ("optim.clip_grad_norm=-1", r"optim.clip_grad_norm=-1.0 is invalid; expected a number > 0"),
    ("slurm.requeue_signal=SIGHUP", r"slurm.requeue_signal='SIGHUP' is invalid"),
    ("seed=-1", r"seed=-1 is invalid"),
    (
        "model.classifier=mlp",
        r"model.classifier='mlp' is invalid; expected one of \['simple', 'two_stream'\]",
    ),
    ("model.classifier_init=zeros", r"model.classifier_init='zeros' is invalid; expected one of"),
    ("model.output=tanh", r"model.output='tanh' is invalid; expected one of \['sigmoid', 'softmax'\]"),
    ("model.embedding_init=word2vec", r"model.embedding_init='word2vec' is invalid; expected one of"),
    ("model.classifier_image_init=img.npz", r"model.classifier_image_init='img.npz' initialises the two-str"),
    ("model.output=softmax debias=gge", r"model.output=softmax with debias=gge: the debias methods are def"),
    ("model.output=softmax debias=gge_q", r"model.output=softmax with debias=gge_q: the debias methods"),
    ("model.output=softmax debias=gge_dq_iter", r"model.output=softmax with debias=gge_dq: the debias"),
    ("debias=lmh debias.mode=iter", r"debias.mode=iter with debias=lmh: only gge_q and gge_dq train in two"),
    ("debias=gge_dq debias.mode=alternate", r"debias.mode='alternate' is invalid; expected one of"),
]


#: wrong types and keys not in a group's structured config, refused by OmegaConf as Hydra composes
COMPOSE_ERRORS = [
    ("model.num_hid=wide", r"Value 'wide' of type 'str' could not be converted to Integer", "model.num_hid"),
    ("data.batch_size=many", r"'many' of type 'str' could not be converted to Integer", "data.batch_size"),
    (
        "optim.clip_grad_norm=abc",
        r"'abc' of type 'str' could not be converted to Float",
        "optim.clip_grad_norm",
    ),
    ("model.num_hidden=3", r"Key 'num_hidden' not in 'ModelConfig'", "model.num_hidden"),
    ("data.shuffle=true", r"Key 'shuffle' not in 'DataConfig'", "data.shuffle"),
    ("slurm.auto_requeue=sometimes", r"'sometimes' is not a valid bool", "slurm.auto_requeue"),
]


@pytest.mark.parametrize("override,message,key", COMPOSE_ERRORS, ids=[o for o, _, _ in COMPOSE_ERRORS])
def test_wrong_types_and_unknown_keys_are_refused_when_composing(tmp_path, override, message, key):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as err:
        compose_train([*TINY_DATA, override], data_dir=tmp_path / "data", output_dir=tmp_path / "run")
    text = f"{err.value}\n{err.value.__cause__}"
    assert re.search(message, text), text
    assert f"full_key: {key}" in text, text


@pytest.mark.parametrize("override,message", BAD_VALUES, ids=[o for o, _ in BAD_VALUES])
def test_bad_value_fails_before_any_data_is_read(tmp_path, override, message):
    data_dir = tmp_path / "data"  # the synthetic set would be generated here on first use
    overrides = [*TINY_DATA, "logger=csv", *override.split(" ")]
    cfg = compose_train(overrides, data_dir=data_dir, output_dir=tmp_path / "run")
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not data_dir.exists(), "validation must come before the data is generated or read"
    assert not (tmp_path / "run").exists()


def test_more_boxes_than_the_data_holds_is_refused_naming_both(tiny_data_dir, tmp_path):
    cache = tiny_data_dir / "synthetic" / "cache"
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    cfg = compose_train([*TINY_DATA, "data.num_boxes=8"], data_dir=tiny_data_dir, output_dir=tmp_path / "run")
    expected = r"data.num_boxes=8 is invalid: the data holds 6 boxes per image"
    with pytest.raises(ConfigError, match=expected) as err:
        train(cfg)
    assert "synthetic_trainval_6.tsv" in str(err.value) and "data.num_boxes=6" in str(err.value)
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before


#: a value out of range (the structured config's own check) and a wrong type (OmegaConf's, as
#: Hydra composes): each a message naming the key, exit status 1, no traceback
CLI_ERRORS = [
    ("model.num_hid=-3", ["error: model.num_hid=-3 is invalid; expected a positive integer"]),
    (
        "model.num_hid=wide",
        ["Value 'wide' of type 'str' could not be converted to Integer", "model.num_hid=wide"],
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("override,expected", CLI_ERRORS, ids=[o for o, _ in CLI_ERRORS])
def test_the_command_line_prints_the_message_not_a_traceback(tmp_path, override, expected):
    run = subprocess.run(
        [sys.executable, "-m", "butd.train", "experiment=quickstart", override, "logger=csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "BUTD_DATA_DIR": str(tmp_path / "data")},
    )
    assert run.returncode == 1
    for line in expected:
        assert line in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "data").exists()


def test_a_data_section_recorded_with_the_old_target_still_loads(tmp_path):
    """Checkpoints made while `DataConfig` named the DataModule's class record `_target_` in their
    data section; evaluate and predict read that section back."""
    from omegaconf import OmegaConf

    from butd.config.data import DataConfig

    cfg = compose_train(TINY_DATA, data_dir=tmp_path, output_dir=tmp_path / "run")
    section = OmegaConf.to_container(cfg.data, resolve=True)
    assert "_target_" not in section
    old = {**section, "_target_": "butd.data.datamodule.VQADataModule"}
    assert DataConfig.from_dict(old) == DataConfig.from_dict(section)
