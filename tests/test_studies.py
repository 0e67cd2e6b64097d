"""The study configs: ablation grids, the Optuna search, SLURM and DDP, composed with Hydra."""

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from butd.config import compose
from butd.config.data import DataConfig
from butd.config.debias import DebiasConfig
from butd.config.model import model_config
from butd.errors import ConfigError
from butd.training.sweep import check_multirun_devices

STUDIES = [
    "ablation_activation",
    "ablation_attention",
    "ablation_width",
    "ablation_objects",
    "reference_progression",
    "ablation_debias",
]


def compose_all(overrides: list[str]):
    """The train config with its `hydra` node, as a launched job sees it."""
    return compose("train", [*overrides, "paths.output_dir=/tmp/x"], return_hydra_config=True)


def grid(cfg) -> dict[str, list[str]]:
    parser = OverridesParser.create()
    params = cfg.hydra.sweeper.params or {}
    return {k: list(parser.parse_override(f"{k}={v}").sweep_string_iterator()) for k, v in params.items()}


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_every_grid_point_of_a_study_composes_into_a_valid_config(study):
    cfg = compose_all([f"experiment={study}"])
    axes = grid(cfg)
    assert cfg.task_name == study and study in cfg.tags
    assert len(axes.pop("seed")) >= 3, "seeds are an axis of every study"
    assert axes, "a study varies something besides the seed"
    for key, values in axes.items():
        assert len(values) >= 2
        for value in values:
            point = compose_all([f"experiment={study}", f"{key}={value}"])
            model_config(point.model)
            DataConfig.from_dict(point.data)
            if key == "debias":  # a method, or a method in its two-step mode (`_iter`)
                debias = DebiasConfig.from_dict(point.debias)
                assert (debias.name, debias.mode) == (
                    value.removesuffix("_iter"),
                    "iter" if "_iter" in value else "tog",
                )
            elif key != "model":  # a group choice, otherwise a value that lands where it says
                assert str(OmegaConf.select(point, key)) == value


def test_reference_progression_goes_from_the_paper_to_the_reference():
    steps = grid(compose_all(["experiment=reference_progression"]))["model"]
    got = [(m.attention, m.activation) for m in (compose_all([f"model={s}"]).model for s in steps)]
    assert got == [("concat", "gated_tanh"), ("concat", "relu"), ("newatt", "relu")]


def test_studies_stack_on_the_quickstart_and_k_cannot_exceed_the_stored_boxes():
    cfg = compose_all(["experiment=[quickstart,ablation_objects]"])
    assert cfg.data.name == "synthetic" and cfg.task_name == "ablation_objects"
    with pytest.raises(ConfigError, match="data.use_boxes=20 must be between 1 and the 10 boxes"):
        DataConfig.from_dict(
            compose_all(["experiment=[quickstart,ablation_objects]", "data.use_boxes=20"]).data
        )


def test_optuna_search_maximises_over_lr_dropout_and_width():
    cfg = compose_all(["hparams_search=optuna"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert cfg.hydra.mode.name == "MULTIRUN"
    for key in sweeper.params:
        assert OmegaConf.select(cfg, key) is not None, key
    assert {"optim.optimizer.lr", "model.num_hid"} <= set(sweeper.params)
    assert any("dropout" in k for k in sweeper.params)


def test_slurm_launcher_asks_for_one_task_per_device(tmp_path):
    # the sweep folder is a literal here: resolving `${butd.new_folder:...}` creates the folder
    cfg = compose_all(
        ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"]
        + [f"hydra.sweep.dir={tmp_path}"]
    )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["tasks_per_node"], launcher["gpus_per_node"], launcher["nodes"]) == (4, 4, 2)
    assert cfg.trainer.strategy == "ddp"


@pytest.fixture()
def as_multirun_job():
    """Make `HydraConfig` look like a job of a local multirun, then restore it."""

    def enter(overrides: list[str]) -> None:
        cfg = compose_all([*overrides, "hydra.mode=MULTIRUN"])
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield enter
    HydraConfig.instance().cfg = None


def test_ddp_inside_a_local_multirun_is_refused(as_multirun_job, monkeypatch):
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    check_multirun_devices(as_multirun_job(["trainer=cpu"]))  # one process per job: fine
    cfg = as_multirun_job(["trainer=ddp"])
    with pytest.raises(ConfigError, match="re-launch the whole sweep"):
        check_multirun_devices(cfg)
    monkeypatch.setenv("SLURM_NTASKS", "2")  # SLURM starts the ranks itself
    check_multirun_devices(cfg)


def test_a_sweep_job_folder_is_named_by_its_overrides_less_the_noise():
    cfg = compose_all(["experiment=ablation_width", "model.num_hid=512", "seed=7", "paths.data_dir=/d"])
    cfg.hydra.job.num = 3  # the launcher numbers the jobs
    assert cfg.hydra.sweep.subdir == "3_model.num_hid=512,seed=7"


def test_the_debias_study_selects_on_the_holdout_and_tests_once():
    cfg = compose_all(["experiment=ablation_debias"])
    data = DataConfig.from_dict(cfg.data)
    assert (data.name, data.val_split, data.test_split, cfg.trainer.max_epochs) == (
        "vqacp2",
        "holdout",
        "test",
        15,
    )
    synthetic = compose_all(["experiment=[ablation_debias,quickstart_cp]"])
    assert synthetic.data.name == "synthetic_cp" and grid(synthetic) == grid(cfg)
    methods = grid(cfg)["debias"]
    assert {"gge", "gge_q", "gge_q_iter", "gge_dq", "gge_dq_iter", "cfvqa"} <= set(methods)


def test_the_gge_recipe_is_opt_in_and_wins_over_the_experiment():
    plain = compose_all(["experiment=[ablation_debias,quickstart_cp]", "debias=gge_dq"])
    assert (plain.optim.optimizer.lr, plain.trainer.max_epochs) == (2e-3, 15)
    gge = compose_all(["experiment=[ablation_debias,quickstart_cp]", "debias=gge_dq", "recipe=gge"])
    assert (gge.optim.optimizer.lr, gge.trainer.max_epochs) == (1e-3, 25)
    assert gge.optim.clip_grad_norm == 0.25 and gge.data.batch_size == plain.data.batch_size
