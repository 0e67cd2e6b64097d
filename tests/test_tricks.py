"""The `trick` group (one row of the paper's Table 1 per file) and the studies built on it: they
compose, each row sets what its file says, `reference` changes nothing, and a real multirun of
rows renders the report's Δ view."""

import json
import runpy
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from butd.config import CONF_DIR, compose
from butd.config.data import DataConfig
from butd.config.model import model_config
from tests.conftest import REPO, TINY_DATA, compose_job
from tests.test_cli import _run
from tests.test_studies import compose_all, grid

TRICKS = sorted(p.stem for p in (CONF_DIR / "trick").glob("*.yaml"))
#: the studies whose grid is rows of the trick group
TRICK_STUDIES = ["tips_and_tricks", "ablation_inputs", "ablation_classifier", "ablation_extra_data"]


def trick_settings(name: str) -> dict[str, object]:
    """What conf/trick/<name>.yaml sets, as dotted keys."""
    content = OmegaConf.load(CONF_DIR / "trick" / f"{name}.yaml")

    def flat(node, prefix=""):
        for key, value in node.items():
            if OmegaConf.is_dict(value):
                yield from flat(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", OmegaConf.to_container(value) if OmegaConf.is_list(value) else value

    return dict(flat(content))


def test_every_row_of_the_table_has_a_file():
    assert TRICKS == sorted(
        ["reference", "gated_tanh", "two_stream", "two_stream_random", "softmax", "binary_targets"]
        + ["l2_features", "random_embedding", "batch_256", "batch_1024", "vg"]
    )
    assert trick_settings("reference") == {}
    assert all(trick_settings(t) for t in TRICKS if t != "reference"), "every other row changes something"


@pytest.mark.parametrize("name", TRICKS)
def test_each_row_sets_what_its_file_says_and_validates(name):
    data = ["data=synthetic_vg"] if name == "vg" else []
    cfg = compose("train", [*data, f"trick={name}"])
    for key, value in trick_settings(name).items():
        assert OmegaConf.to_container(cfg)[key.split(".")[0]][key.split(".")[1]] == value, key
    DataConfig.from_dict(cfg.data)
    model_config(cfg.model)


def test_the_reference_row_changes_nothing():
    for base in ([], ["experiment=quickstart"]):
        assert compose("train", base) == compose("train", [*base, "~trick"])
    assert compose("train", ["trick=l2_features"]) != compose("train")


def test_a_row_applies_on_top_of_the_experiment():
    cfg = compose("train", ["experiment=quickstart", "trick=batch_256"])
    assert (cfg.data.name, cfg.data.batch_size, cfg.model.num_hid) == ("synthetic", 256, 256)


def test_the_readme_figure_puts_the_papers_number_beside_each_row():
    script = runpy.run_path(str(REPO / "scripts" / "readme_figures.py"))
    assert set(script["PAPER"]) <= set(TRICKS)
    table = "| trick | seeds |\n|---|---|\n| reference | 3 |\n| softmax | 3 |\n| vg | 3 |"
    assert script["with_paper_column"](table).splitlines() == [
        "| trick | seeds | paper, VQA v2 val |",
        "|---|---|---|",
        "| reference | 3 | 63.58 (the reference's own) |",
        "| softmax | 3 | - |",
        "| vg | 3 | 63.15 with it; 62.48 without |",
    ]


def test_tips_and_tricks_runs_every_row_and_each_study_runs_rows_of_it():
    table = grid(compose_all(["experiment=tips_and_tricks", "data=synthetic"]))
    assert sorted(table["trick"]) == TRICKS and table["seed"] == ["1111", "1112", "1113"]
    for study in TRICK_STUDIES:
        cfg = compose_all([f"experiment=[quickstart,{study}]", "data=synthetic"])
        rows = grid(cfg)
        assert cfg.task_name == study and study in cfg.tags
        assert rows["trick"][0] == "reference" and set(rows["trick"]) <= set(TRICKS), study
        assert len(rows["seed"]) == 3
    assert grid(compose_all(["experiment=ablation_inputs"]))["trick"] == [
        "reference", "binary_targets", "l2_features", "random_embedding", "batch_256", "batch_1024"
    ]  # fmt: skip


@pytest.mark.parametrize("study", ["tips_and_tricks", "ablation_extra_data"])
def test_the_vg_studies_read_the_vg_data_for_every_row(study):
    assert compose_all([f"experiment={study}"]).data.name == "vqa2_vg"
    assert compose_all([f"experiment=[quickstart,{study}]", "data=synthetic_vg"]).data.name == "synthetic_vg"


def test_the_output_study_sweeps_the_output_layer():
    cfg = compose_all(["experiment=[quickstart,ablation_output]"])
    assert grid(cfg)["model.output"] == ["sigmoid", "softmax"] and cfg.task_name == "ablation_output"


def test_an_l2_checkpoint_evaluates_on_l2_features_as_it_trained(tiny_cfg, tiny_data_dir, tmp_path):
    from butd.evaluate import evaluate
    from butd.train import train

    cfg = tiny_cfg(["trick=l2_features", "model.num_hid=16", "trainer.max_epochs=1"])
    last = train(cfg)["history"][-1]
    run = Path(cfg.paths.output_dir)
    # data=synthetic on the command line (its normalize_features is none): the checkpoint's l2 wins
    job = compose_job(
        "evaluate",
        [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "trainer.accelerator=cpu", *TINY_DATA],
        data_dir=tiny_data_dir,
        output_dir=tmp_path / "eval",
    )
    assert job.data.normalize_features == "none"
    assert evaluate(job)["score"] == pytest.approx(last["val/score"], abs=1e-3)


#: the tiny set on top of experiment=quickstart (which picks data=synthetic itself)
TINY = [o for o in TINY_DATA if o != "data=synthetic"]


@pytest.mark.slow
def test_a_multirun_of_rows_trains_each_and_the_report_shows_the_deltas(tmp_path, tiny_data_dir):
    rows = ["reference", "l2_features", "binary_targets"]
    sweep = _run(
        ["butd.train", "-m", "experiment=quickstart", f"trick={','.join(rows)}", "trainer.max_epochs=1"]
        + ["model.num_hid=32", "logger=csv", *TINY],
        tmp_path,
        BUTD_DATA_DIR=str(tiny_data_dir),
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    (folder,) = (tmp_path / "outputs" / "quickstart" / "multiruns").iterdir()
    jobs = sorted((d for d in folder.iterdir() if d.is_dir()), key=lambda d: int(d.name.split("_")[0]))
    assert [j.name.split(",")[0] for j in jobs] == [f"{i}_trick={r}" for i, r in enumerate(rows)]
    scores = [json.loads((j / "metrics.json").read_text())["val/score"] for j in jobs]
    assert len(set(scores)) == 3, "each row trains differently"
    configs = [OmegaConf.load(j / ".hydra" / "config.yaml").data for j in jobs]
    assert [(c.targets, c.normalize_features) for c in configs] == [
        ("soft", "none"), ("soft", "l2"), ("binary", "none")
    ]  # fmt: skip

    out = _run(["butd.report", str(folder)], tmp_path)
    assert out.returncode == 0, out.stderr
    table = [line for line in out.stdout.splitlines() if line.startswith("|")]
    head = "| trick | seeds | converged | best epoch | best val/score | Δ val/score | Δ VQA acc |"
    assert table[0].startswith(head)
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in table[2:]]
    assert [c[0] for c in cells] == rows and cells[0][5:7] == ["reference", "reference"]
    for row, score in zip(cells[1:], scores[1:], strict=True):
        # one seed a row: the difference, without an interval
        assert row[5].endswith("(no interval: n=1)")
        assert float(row[5].split()[0]) == pytest.approx(score - scores[0], abs=0.006)
