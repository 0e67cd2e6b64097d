"""Run names, tags and sweep folder names made from a job's overrides."""

import pytest

from butd.config.naming import (
    MAX_DIRNAME,
    clean_overrides,
    folder_name,
    job_dirname,
    new_folder,
    run_name,
    run_tags,
)

JOB = [
    "experiment=ablation_activation",
    "model.activation=glu",
    "seed=1112",
    "paths.data_dir=/scratch/vqa",
    "logger.wandb.offline=false",
    "+trainer.max_time=00:01:00:00",
    "data.num_workers=8",
    "ckpt_path=last",
]


def test_noise_is_dropped_and_what_changes_is_kept_in_order():
    assert clean_overrides(JOB) == ["model.activation=glu", "seed=1112", "trainer.max_time=00:01:00:00"]
    assert run_name(JOB, default="x") == "model.activation=glu,seed=1112,trainer.max_time=00:01:00:00"
    assert run_name(["experiment=quickstart", "paths.log_dir=/tmp"], default="quickstart") == "quickstart"
    # a prefix match is by whole key segments: `pathsology` is not under `paths`
    assert clean_overrides(["pathsology=1", "experimental=2"]) == ["pathsology=1", "experimental=2"]
    assert clean_overrides(JOB, drop=["seed"], keep=["experiment"])[:2] == [
        "experiment=ablation_activation",
        "model.activation=glu",
    ]


def test_job_folder_is_numbered_safe_and_bounded():
    assert job_dirname(3, JOB) == "3_model.activation=glu,seed=1112,trainer.max_time=00-01-00-00"
    assert job_dirname(0, ["experiment=quickstart"]) == "0"
    long = [f"data.synthetic.key_{i}=value_{i}" for i in range(20)]
    a, b = job_dirname(1, long), job_dirname(1, [*long[:-1], "data.synthetic.key_19=other"])
    assert len(a) <= MAX_DIRNAME + 3 and a != b  # cut, and kept apart by the hash of the whole
    assert "/" not in job_dirname(2, ["model=a/b"])


def test_tags_add_one_per_override_to_the_experiment_tags():
    assert run_tags(["ablation_activation"], JOB) == [
        "ablation_activation",
        "model.activation=glu",
        "seed=1112",
        "trainer.max_time=00:01:00:00",
    ]
    assert all(len(t) <= 64 for t in run_tags([], [f"model.name={'x' * 100}"]))


@pytest.mark.parametrize("name", ["../../x", "a/b", "/abs", "..", "", "x y"])
def test_a_task_name_that_leaves_the_log_folder_is_refused(name):
    with pytest.raises(SystemExit, match=r"task_name=.* cannot name a folder inside paths.log_dir"):
        folder_name("task_name", name)


def test_ordinary_task_names_pass():
    assert folder_name("task_name", "ablation_width-2") == "ablation_width-2"


def test_a_taken_run_folder_gets_a_numbered_sibling_and_the_taken_one_is_left_alone(tmp_path):
    base = tmp_path / "train" / "runs" / "2026-11-30_18-20-17"
    assert new_folder(base) == str(base) and base.is_dir()
    (base / "metrics.json").write_text("{}")
    second, third = new_folder(base), new_folder(base)
    assert (second, third) == (f"{base}_2", f"{base}_3")
    assert sorted(p.name for p in base.iterdir()) == ["metrics.json"]
