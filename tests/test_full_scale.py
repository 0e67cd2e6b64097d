"""The full-scale path on generated files of the real shapes: raw -> cache -> training, per store.

`data=realistic` writes VQA v2's formats with 2048-d features and 36 boxes per image
(`realistic_adaptive`: 10-100); here with few images, converted by worker processes, then
trained for an epoch from each feature store. The stores read the same cache, so a run's
numbers must not depend on the store.
"""

import re

import h5py
import pytest

from butd.config.data import DataConfig
from butd.preparation.build import ensure_prepared
from butd.train import train
from tests.conftest import compose_train

pytestmark = pytest.mark.slow  # generates and trains on files of the real shapes (2048-d features)

SMALL = [
    "data.synthetic.num_train_images=24",
    "data.synthetic.num_val_images=8",
    "data.synthetic.num_test_images=4",
    "data.synthetic.questions_per_image=4",
    "data.min_answer_count=2",
    "data.batch_size=32",
    "data.prepare_workers=2",
    "data.prepare_chunk_mb=1",
]
RUN = ["trainer.accelerator=cpu", "logger=csv", "model.num_hid=32", "trainer.max_epochs=1"]


@pytest.fixture(scope="module")
def realistic_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("realistic")
    for name in ("realistic", "realistic_adaptive"):
        cfg = compose_train([f"data={name}", *SMALL], data_dir=data_dir, output_dir=data_dir / "x")
        ensure_prepared(DataConfig.from_dict(cfg.data), progress=False)
    return data_dir


def _train(data_dir, tmp_path, name: str, *overrides: str) -> dict:
    run = re.sub(r"[^A-Za-z0-9_.]", "-", "_".join([name, *overrides]))
    cfg = compose_train(
        [f"data={name}", *SMALL, *RUN, *overrides], data_dir=data_dir, output_dir=tmp_path / run
    )
    return train(cfg)


def _scores(summary: dict) -> list[float]:
    return [summary["history"][0][k] for k in ("val/score", "val/vqa_acc", "train/loss_epoch")]


def test_realistic_files_have_the_real_shapes(realistic_dir):
    cfg = DataConfig.from_dict(
        compose_train(["data=realistic", *SMALL], data_dir=realistic_dir, output_dir=realistic_dir / "x").data
    )
    line = (cfg.raw_path / cfg.features[0]).read_bytes().split(b"\n", 1)[0].rstrip().split(b"\t")
    assert int(line[3]) == 36 and len(line[5]) == 36 * 2048 * 4 * 4 // 3  # base64 of [36, 2048] float32
    with h5py.File(cfg.cache_path / "train.h5") as f:
        assert f["images/features"].shape == (24 * 36, 2048) and f["images/features"].dtype == "float16"
        assert len(f["questions/question_id"]) == 24 * 4


def test_every_feature_store_trains_to_the_same_numbers(realistic_dir, tmp_path):
    results = {
        store: _train(realistic_dir, tmp_path, "realistic", f"data.feature_store={store}")
        for store in ("h5", "ram", "gpu", "auto")
    }
    # gpu on a machine without one holds the tensors on the trainer's device, the CPU here
    reference = _scores(results["h5"])
    for store, summary in results.items():
        assert _scores(summary) == pytest.approx(reference, abs=1e-5), store


def test_adaptive_boxes_train_alike_from_disk_and_from_memory(realistic_dir, tmp_path):
    h5 = _train(realistic_dir, tmp_path, "realistic_adaptive", "data.feature_store=h5")
    ram = _train(realistic_dir, tmp_path, "realistic_adaptive", "data.feature_store=ram")
    assert _scores(h5) == pytest.approx(_scores(ram), abs=1e-5)


def test_train_and_val_together_for_a_test_submission(realistic_dir, tmp_path):
    alone = _train(realistic_dir, tmp_path, "realistic_adaptive", "data.feature_store=ram")
    both = _train(
        realistic_dir,
        tmp_path,
        "realistic_adaptive",
        "data.feature_store=ram",
        "data.train_splits=[train,val]",
    )
    # twice the training questions: 24 + 8 images of 4 questions in batches of 32
    assert alone["history"][0]["step"] == 3 and both["history"][0]["step"] == 4
