"""The composed Hydra config driving real Lightning runs on the tiny synthetic set."""

import json
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from butd.config.data import DataConfig
from butd.errors import ConfigError
from butd.reporting.runs import read_runs
from butd.train import build, train
from butd.training.module import VQAModule
from butd.training.validate import validate_train_config
from tests.conftest import CONF_DIR, compose_train

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def test_default_config_is_the_reference_recipe(tmp_path):
    cfg = compose_train([], data_dir=tmp_path, output_dir=tmp_path / "run")
    assert cfg.data.name == "vqa2" and cfg.data.batch_size == 512
    assert cfg.model.attention == "newatt" and cfg.model.num_hid == 1024
    assert cfg.model.activation == "relu"
    assert cfg.optim.optimizer._target_ == "torch.optim.Adamax" and cfg.optim.optimizer.lr == 0.002
    assert cfg.trainer.gradient_clip_val == 0.25 and cfg.trainer.max_epochs == 30
    assert cfg.seed == 1111
    expected = "bf16-mixed" if torch.cuda.is_available() else "32-true"
    assert cfg.trainer.precision == expected


@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_composes_and_builds(model, tmp_path):
    cfg = compose_train([f"model={model}"], data_dir=tmp_path, output_dir=tmp_path / "run")
    from butd.config.model import model_config
    from butd.models import build_model

    net = build_model(model_config(cfg.model), ntoken=20, v_dim=16, num_answers=7)
    logits = net(torch.rand(2, 5, 16), torch.randint(0, 21, (2, 14)))
    assert logits.shape == (2, 7)


@pytest.mark.parametrize("model", MODELS)
def test_use_spatial_is_off_in_every_model_config(model, tmp_path):
    cfg = compose_train([f"model={model}"], data_dir=tmp_path, output_dir=tmp_path / "run")
    assert cfg.model.use_spatial is False  # the reference ignores the box geometry


def test_use_spatial_override_composes_and_trains(tiny_cfg):
    cfg = tiny_cfg(["debug=fdr", "model.num_hid=32", "model.use_spatial=true"])
    assert cfg.model.use_spatial is True
    module, _ = build(validate_train_config(cfg))
    assert module.model.use_spatial
    # the synthetic features are 32-d; attention and v_net take the 6 box numbers on top
    assert module.model.v_net.linear.weight_v.shape == (32, 32 + 6)
    assert module.model.attention.v_proj.linear.weight_v.shape == (32, 32 + 6)
    summary = train(cfg)
    assert [r["epoch"] for r in summary["history"]] == [0]
    assert summary["history"][0]["val/score"] is not None
    with pytest.raises(ConfigCompositionException, match="model.use_spatial=maybe"):
        tiny_cfg(["model.use_spatial=maybe"])


def test_experiment_list_is_not_empty():
    assert "quickstart" in EXPERIMENTS and len(EXPERIMENTS) >= 2


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment, tmp_path):
    """Composing `experiment=X` gives the default config with X's group overrides (its `defaults`)
    and then X's own keys on top, nothing else; X's sweep grid names keys of that config, and each
    of its values composes and lands there; the data section validates; the optimiser builds."""

    def compose(overrides, **kwargs):
        return compose_train(overrides, data_dir=tmp_path, output_dir=tmp_path / "r", **kwargs)

    raw = OmegaConf.load(CONF_DIR / "experiment" / f"{experiment}.yaml")
    groups = {k.removeprefix("override /"): v for entry in raw.get("defaults", []) for k, v in entry.items()}
    own = OmegaConf.masked_copy(raw, [k for k in raw if k not in ("defaults", "hydra")])
    cfg = compose([f"experiment={experiment}"], return_hydra_config=True)

    assert cfg.task_name == experiment and experiment in cfg.tags
    base = compose([f"{g}={o}" for g, o in groups.items()])
    OmegaConf.set_struct(base, False)  # an experiment may add keys to an open mapping (data.synthetic)
    expected = OmegaConf.merge(base, own)
    composed = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    assert OmegaConf.to_container(composed) == OmegaConf.to_container(expected)
    for group, option in groups.items():
        assert cfg.hydra.runtime.choices[group] == option

    grid = OmegaConf.select(raw, "hydra.sweeper.params")
    if grid is not None:
        assert grid and cfg.hydra.sweeper.params == grid
        grid = {key: str(values).split(",") for key, values in grid.items()}
        for key in grid:  # a config group, or a key of the composed config
            missing = OmegaConf.select(cfg, key, default=KeyError) is KeyError
            assert (CONF_DIR / key).is_dir() or not missing, f"the sweep names {key}, not in the config"
        # every value of every axis once: point i takes each axis's i-th value (the last one past its end)
        for i in range(max(len(values) for values in grid.values())):
            point = {key: values[min(i, len(values) - 1)] for key, values in grid.items()}
            composed = compose(
                [f"experiment={experiment}", *(f"{k}={v}" for k, v in point.items())],
                return_hydra_config=True,
            )
            for key, value in point.items():
                if (CONF_DIR / key).is_dir():  # a config group: Hydra chose that option
                    assert composed.hydra.runtime.choices[key] == value
                else:
                    assert str(OmegaConf.select(composed, key)) == value

    assert DataConfig.from_dict(cfg.data).name == cfg.data.name  # validates the data section
    optimizer = instantiate(cfg.optim.optimizer)([torch.nn.Parameter(torch.zeros(3))])
    assert isinstance(optimizer, torch.optim.Optimizer)
    assert optimizer.defaults["lr"] == cfg.optim.optimizer.lr


def test_unknown_activation_lists_the_valid_ones(tiny_cfg):
    cfg = tiny_cfg(["model.activation=swish"])
    with pytest.raises(ConfigError, match=r"model.activation='swish'.*'relu', 'glu', 'gated_tanh'"):
        build(validate_train_config(cfg))
    with pytest.raises(ConfigError, match=r"model.attention='dot'.*'newatt'"):
        build(validate_train_config(tiny_cfg(["model.attention=dot"])))


def test_fast_dev_run_through_the_composed_config(tiny_cfg):
    cfg = tiny_cfg(["debug=fdr", "model.num_hid=32"])
    summary = train(cfg)
    assert [r["epoch"] for r in summary["history"]] == [0]
    assert "val/score" in summary["history"][0] and "train/loss_epoch" in summary["history"][0]
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()  # fast_dev_run writes nothing


@pytest.mark.slow
@pytest.mark.parametrize(("model", "store"), [("newatt", "ram"), ("concat", "h5"), ("question_only", "auto")])
def test_fit_validates_checkpoints_and_resumes(tiny_cfg, tmp_path, model, store):
    """Two real epochs write metrics.json and checkpoints; a resume runs the third epoch only."""
    overrides = [
        f"model={model}",
        f"data.feature_store={store}",
        "model.num_hid=32",
        "model.activation=gated_tanh",
    ]
    cfg = tiny_cfg([*overrides, "trainer.max_epochs=2"])
    summary = train(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epoch"] == 1 and [r["epoch"] for r in metrics["history"]] == [0, 1]
    assert metrics["val/score"] == max(r["val/score"] for r in metrics["history"])
    assert 0 <= metrics["val/score"] <= metrics["val/upper_bound"] <= 100
    assert metrics["num_parameters"] == summary["num_parameters"] > 0
    last = out / "checkpoints" / "last.ckpt"
    best = Path(metrics["best_checkpoint"])
    assert last.is_file() and best.is_file() and best.name.startswith("best-epoch")

    # the checkpoint rebuilds the model by itself and carries vocabulary and answers
    module = VQAModule.load_from_checkpoint(last, map_location="cpu")
    ckpt = torch.load(last, map_location="cpu")  # plain types only: weights_only loading works
    assert ckpt["butd"]["answers"] and ckpt["butd"]["vocab"]["words"]
    assert module.model_cfg.activation == "gated_tanh"

    resumed = train(tiny_cfg([*overrides, "trainer.max_epochs=3", f"ckpt_path={last}"], run="resumed"))
    assert [r["epoch"] for r in resumed["history"]] == [0, 1, 2]
    assert resumed["history"][:2] == metrics["history"]


@pytest.mark.slow
def test_ckpt_path_last_finds_the_newest_run(tiny_cfg):
    train(tiny_cfg(["model.num_hid=16", "trainer.max_epochs=1"], run="first"))
    second = tiny_cfg(["model.num_hid=16", "trainer.max_epochs=2", "ckpt_path=last"], run="second")
    resumed = train(second)
    assert [r["epoch"] for r in resumed["history"]] == [0, 1]
    # the lineage rides in the checkpoint, so the report counts the two folders as one run
    runs = Path(second.paths.output_dir).parent
    for name in ("first", "second"):  # what Hydra's launcher writes beside a command-line run
        (runs / name / ".hydra").mkdir()
        (runs / name / ".hydra" / "overrides.yaml").write_text("- model.num_hid=16\n")
    assert resumed["lineage"] == [str((runs / "first").resolve()), str((runs / "second").resolve())]
    statuses = [(r.path.name, r.status) for r in read_runs([runs])]
    assert statuses == [("first", "resumed"), ("second", "finished")]


def test_missing_ckpt_path_is_a_clear_error(tiny_cfg):
    with pytest.raises(ConfigError, match="ckpt_path=nowhere.ckpt: no such file"):
        train(tiny_cfg(["ckpt_path=nowhere.ckpt"]))


@pytest.mark.slow
def test_same_seed_same_metrics(tiny_cfg):
    keys = ("train/loss_epoch", "train/score", "val/loss", "val/score")
    runs = [
        train(tiny_cfg(["model.num_hid=16", "trainer.max_epochs=1"], run=f"seed{i}"))["history"]
        for i in range(2)
    ]
    assert [{k: r[k] for k in keys} for r in runs[0]] == [{k: r[k] for k in keys} for r in runs[1]]


def test_out_of_memory_is_explained_with_sizes(tiny_cfg):
    from butd.training.run import out_of_memory_advice

    cfg = tiny_cfg(["model.num_hid=16"])
    module, datamodule = build(validate_train_config(cfg))
    message = out_of_memory_advice(datamodule, module, torch.OutOfMemoryError("CUDA out of memory"))
    assert "batch 16" in message and "data.batch_size" in message and "data.feature_store=h5" in message
    assert f"{module.num_parameters:,} parameters" in message


@pytest.mark.parametrize("debug", ["default", "fdr"])
def test_debug_runs_have_their_own_task(debug, tmp_path):
    # so that `ckpt_path=last` of the quick start never resumes a debug run's checkpoint
    plain = compose_train(["experiment=quickstart"], data_dir=tmp_path, output_dir=tmp_path / "r")
    cfg = compose_train(
        ["experiment=quickstart", f"debug={debug}"], data_dir=tmp_path, output_dir=tmp_path / "r"
    )
    assert plain.task_name == "quickstart"
    assert cfg.task_name == "debug"
