"""Shared fixtures: where the golden oracles produced by the reference code live."""

import os
from pathlib import Path

import pytest

# The oracles are committed with the tests, so a fresh clone has them.
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
# Where they were copied from: shared/golden beside the checkout, when it is there
# (tests/test_golden.py checks that the two copies agree).
SHARED_GOLDEN_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """Folder of golden JSON/pt files; a missing folder is a hard failure, never a skip."""
    if not GOLDEN_DIR.is_dir():
        pytest.fail(
            f"golden oracle folder not found at {GOLDEN_DIR}; it is part of the repository "
            "(restore it with git checkout -- tests/golden)",
            pytrace=False,
        )
    return GOLDEN_DIR


# ---------------------------------------------------------------------------------------------
# A tiny synthetic data set, generated and prepared once per test session, and Hydra
# composition of the real configs around it.

REPO = Path(__file__).resolve().parents[1]


def edited_checkpoint(src: Path, dst: Path, edit) -> Path:
    """A copy of checkpoint `src` at `dst`, passed through `edit(checkpoint)` first (a crafted file)."""
    import torch

    checkpoint = torch.load(src, map_location="cpu", weights_only=True)
    edit(checkpoint)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, dst)
    return dst


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess a test starts: this checkout first on the path, so that
    the code under test is this one's and test-only callbacks (`tests.training.faults`) import."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


CONF_DIR = REPO / "conf"

#: overrides that make `data=synthetic` tiny enough for a test
TINY_DATA = [
    "data=synthetic",
    "data.synthetic.num_train_images=40",
    "data.synthetic.num_val_images=16",
    "data.synthetic.num_test_images=8",
    "data.synthetic.questions_per_image=4",
    "data.synthetic.num_boxes=6",
    "data.synthetic.feature_dim=32",
    "data.synthetic.glove_dim=50",
    "data.emb_dim=50",
    "data.min_answer_count=2",
    "data.batch_size=16",
]


#: `TINY_DATA` with 4 to 12 boxes per image, like the adaptive 10-100 sets
TINY_ADAPTIVE = [
    *TINY_DATA,
    "data.boxes=adaptive",
    "data.synthetic.num_boxes=12",
    "data.synthetic.min_boxes=4",
    "data.min_boxes=4",
]


def compose_train(
    overrides: list[str],
    *,
    data_dir: Path,
    output_dir: Path,
    log_dir: Path | None = None,
    return_hydra_config: bool = False,
):
    """The real `train` config composed with Hydra's compose API, paths pointed at tmp dirs
    (with its `hydra` section, sweeper and launcher, when `return_hydra_config`)."""
    from butd.config import compose

    return compose(
        "train",
        [
            *overrides,
            f"paths.data_dir={data_dir}",
            f"paths.output_dir={output_dir}",
            f"paths.log_dir={log_dir or output_dir.parent}",
        ],
        return_hydra_config=return_hydra_config,
    )


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """`paths.data_dir` holding the tiny synthetic set, raw files and prepared cache."""
    from butd.config.data import DataConfig
    from butd.preparation.build import ensure_prepared

    data_dir = tmp_path_factory.mktemp("data")
    cfg = compose_train(TINY_DATA, data_dir=data_dir, output_dir=data_dir / "unused")
    ensure_prepared(DataConfig.from_dict(cfg.data), progress=False)
    return data_dir


@pytest.fixture(scope="session")
def tiny_adaptive_dir(tmp_path_factory) -> Path:
    """`paths.data_dir` holding the tiny adaptive-box set, raw files and prepared cache."""
    from butd.config.data import DataConfig
    from butd.preparation.build import ensure_prepared

    data_dir = tmp_path_factory.mktemp("adaptive")
    cfg = compose_train(TINY_ADAPTIVE, data_dir=data_dir, output_dir=data_dir / "unused")
    ensure_prepared(DataConfig.from_dict(cfg.data), progress=False)
    return data_dir


@pytest.fixture()
def tiny_cfg(tiny_data_dir, tmp_path):
    """Compose `train` on the tiny set: `tiny_cfg(["model=concat", ...], run="a")`.

    Runs land in `tmp_path/logs/train/runs/<run>`, the layout `paths.log_dir` gives.
    """

    def make(overrides: list[str] = (), *, run: str = "run"):
        logs = tmp_path / "logs"
        return compose_train(
            [*TINY_DATA, "trainer.accelerator=cpu", "logger=csv", *overrides],
            data_dir=tiny_data_dir,
            output_dir=logs / "train" / "runs" / run,
            log_dir=logs,
        )

    return make


def compose_job(config_name: str, overrides: list[str], *, data_dir: Path, output_dir: Path):
    """Another entry point's primary config (evaluate, predict, ...), paths pointed at tmp dirs."""
    from butd.config import compose

    return compose(config_name, [*overrides, f"paths.data_dir={data_dir}", f"paths.output_dir={output_dir}"])


@pytest.fixture(scope="session")
def tiny_run(tiny_data_dir, tmp_path_factory) -> dict:
    """A BUTD model (ReLU, width 32) trained 2 epochs on the tiny set: its run folder and metrics."""
    import json

    from butd.train import train

    out = tmp_path_factory.mktemp("tiny_run")
    cfg = compose_train(
        [*TINY_DATA, "trainer.accelerator=cpu", "logger=csv", "model.num_hid=32", "trainer.max_epochs=2"],
        data_dir=tiny_data_dir,
        output_dir=out,
    )
    train(cfg)
    return {
        "dir": out,
        "ckpt": out / "checkpoints" / "last.ckpt",
        "metrics": json.loads((out / "metrics.json").read_text()),
    }


#: data=vqacp2 made tiny: the tiny synthetic set's features and GloVe, re-split into VQA-CP files
TINY_CP = [
    "data=vqacp2",
    "data.features_from=null",
    "data.features=[synthetic_trainval_6.tsv]",
    "data.glove=glove/glove.6B.50d.txt",
    "data.emb_dim=50",
    "data.num_boxes=6",
    "data.min_answer_count=2",
    "data.batch_size=16",
    "data.num_workers=0",
    "data.prepare_workers=0",
    "data.holdout_fraction=0.2",
]


@pytest.fixture(scope="session")
def tiny_cp_raw(tiny_data_dir, tmp_path_factory) -> Path:
    """A raw folder in VQA-CP v2's layout (the four vqacp_v2 files, the feature TSV, GloVe), made
    from the tiny synthetic set by the changing-priors re-split."""
    import shutil

    from butd.preparation.changing_priors import write_changing_priors

    source = tiny_data_dir / "synthetic" / "raw"
    raw = tmp_path_factory.mktemp("vqacp2_raw")
    write_changing_priors(source, raw, seed=0, major=0.9)
    (raw / "glove").mkdir()
    shutil.copy(source / "glove" / "glove.6B.50d.txt", raw / "glove")
    shutil.copy(source / "synthetic_trainval_6.tsv", raw)
    return raw


@pytest.fixture()
def small_disk(tmp_path):
    """`mount(kib, leave=None)`: a tmpfs of `kib` KiB at a new folder under tmp_path, optionally filled
    to leave `leave` bytes free, for disk-full tests; unmounted afterwards. Mounting needs root (or
    CAP_SYS_ADMIN): elsewhere the test is skipped, saying so."""
    import shutil
    import subprocess

    mounts: list[Path] = []

    def mount(kib: int) -> Path:
        target = tmp_path / f"disk{len(mounts)}"
        target.mkdir()
        command = ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(target)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"no small tmpfs here (mount: {done.stderr.strip()}); disk-full tests need root")
        mounts.append(target)
        return target

    def fill(target: Path, leave: int) -> None:
        """Take all but `leave` bytes of the disk at `target` (tmpfs counts whole pages)."""
        (target / "filler").write_bytes(b"\0" * max(0, shutil.disk_usage(target).free - leave))

    mount.fill = fill  # type: ignore[attr-defined]
    yield mount
    for target in mounts:
        subprocess.run(["umount", "-l", str(target)], check=False)
