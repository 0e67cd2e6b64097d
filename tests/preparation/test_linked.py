"""A cache that reads another cache's features in place (`data.features_from`): the VQA-CP files
re-split from the tiny synthetic set, linked to the synthetic set's own prepared cache, against
the same files converted from the feature TSV."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch

from butd.cache.load import load_cache
from butd.cache.manifest import CacheError
from butd.config.data import DataConfig
from butd.data.datamodule import VQABatches
from butd.data.stores import TensorSplit
from butd.evaluation.inference import find_image
from butd.preparation.build import prepare
from butd.train import train
from tests.conftest import TINY_ADAPTIVE, TINY_CP, TINY_DATA, compose_train, subprocess_env


def _cp(raw, cache, *overrides: str) -> DataConfig:
    cfg = compose_train(
        [*TINY_CP, f"data.raw_dir={raw}", f"data.cache_dir={cache}", *overrides],
        data_dir=cache.parent,
        output_dir=cache / "unused",
    )
    return DataConfig.from_dict(cfg.data)


def _source(data_dir, overrides=TINY_DATA) -> DataConfig:
    cfg = compose_train(list(overrides), data_dir=data_dir, output_dir=data_dir / "unused")
    return DataConfig.from_dict(cfg.data)


@pytest.fixture()
def linked(tiny_cp_raw, data_copy, tmp_path):
    """(converted, linked) caches of the same VQA-CP files; the linked one reads a private copy of
    the tiny synthetic cache, which the test may rebuild or remove."""
    converted = prepare(_cp(tiny_cp_raw, tmp_path / "converted"), progress=False)
    source = data_copy / "synthetic" / "cache"
    info = prepare(_cp(tiny_cp_raw, tmp_path / "linked", f"data.features_from={source}"), progress=False)
    return converted, info, source


def test_a_linked_cache_reads_the_boxes_a_converted_one_holds(linked):
    converted, info, source = linked
    assert info.manifest.features_from["cache"] == str(source)
    assert info.manifest.counts.splits == converted.manifest.counts.splits
    for split in converted.counts.splits:
        mine, theirs = info.split_path(split), converted.split_path(split)
        assert mine.stat().st_size < theirs.stat().st_size / 2  # tables only, no features
        every = list(range(len(VQABatches(theirs, num_answers=converted.num_answers))))
        a = VQABatches(theirs, num_answers=converted.num_answers)[every]
        b = VQABatches(mine, num_answers=info.num_answers)[every]
        t = TensorSplit.load(mine, num_answers=info.num_answers).batch(torch.tensor(every))
        for key in ("v", "b", "q", "question_id", "target"):
            assert torch.equal(getattr(a, key), getattr(b, key)), (split, key)
            assert torch.equal(getattr(a, key), getattr(t, key)), (split, key)


def test_find_image_reads_a_linked_split(linked):
    converted, info, _ = linked
    with h5py.File(converted.split_path("test"), "r") as f:
        image_id = int(f["images/image_id"][0])
    a, b = find_image(converted, image_id, "test"), find_image(info, image_id, "test")
    assert np.array_equal(a.features, b.features) and np.array_equal(a.boxes, b.boxes)
    assert a.features.shape[0] == 6


def test_a_rebuilt_or_missing_source_is_refused_with_the_fix(linked, data_copy, tiny_cp_raw, tmp_path):
    _, info, source = linked
    cfg = _cp(tiny_cp_raw, tmp_path / "linked", f"data.features_from={source}")
    prepare(_source(data_copy), force=True, progress=False)
    with pytest.raises(
        CacheError, match="features_from.*has changed: (it was rebuilt|.* was rewritten)"
    ) as err:
        load_cache(cfg)
    assert "python -m butd.prepare data=vqacp2 force=true" in str(err.value)
    assert prepare(cfg, force=True, progress=False).manifest.features_from["cache"] == str(source)
    shutil.rmtree(source)
    with pytest.raises(CacheError, match="manifest.json does not exist"):
        load_cache(cfg)


def test_a_source_without_a_cache_or_with_other_boxes_is_named(tiny_cp_raw, tiny_adaptive_dir, tmp_path):
    with pytest.raises(CacheError, match="has no prepared cache .*python -m butd.prepare data=vqa2"):
        prepare(_cp(tiny_cp_raw, tmp_path / "a", f"data.features_from={tmp_path / 'none'}"), progress=False)
    adaptive = tiny_adaptive_dir / "synthetic" / "cache"
    assert _source(tiny_adaptive_dir, TINY_ADAPTIVE).boxes == "adaptive"
    with pytest.raises(CacheError, match="stores other boxes .*boxes: 'adaptive' there, 'fixed' here"):
        prepare(_cp(tiny_cp_raw, tmp_path / "b", f"data.features_from={adaptive}"), progress=False)


@pytest.mark.slow
def test_training_reads_a_linked_cache(tiny_cp_raw, data_copy, tmp_path):
    source = data_copy / "synthetic" / "cache"
    cfg = compose_train(
        [
            *TINY_CP,
            f"data.raw_dir={tiny_cp_raw}",
            f"data.cache_dir={tmp_path / 'linked'}",
            f"data.features_from={source}",
            "data.auto_prepare=true",
            "data.feature_store=h5",
            "trainer.accelerator=cpu",
            "trainer.max_epochs=1",
            "logger=csv",
            "model.num_hid=32",
        ],
        data_dir=tmp_path,
        output_dir=tmp_path / "run",
    )
    summary = train(cfg)
    assert 0 < summary["val/score"] <= 100 and summary["test/vqa_acc"] >= 0


@pytest.mark.slow
def test_a_training_holds_the_source_cache_so_a_rebuild_waits_for_its_test_evaluation(
    tiny_cp_raw, data_copy, tmp_path
):
    """A training through `data.features_from`, paused in its end-of-training test evaluation, and
    `python -m butd.prepare ... force=true` of the source cache started meanwhile: the rebuild waits
    (saying so) until the training is done, which scores test on the features it trained with."""
    import json
    import subprocess
    import sys
    import time

    source = data_copy / "synthetic" / "cache"
    marker, release = tmp_path / "paused", tmp_path / "release"
    env = subprocess_env(OMP_NUM_THREADS="1", WANDB_SILENT="true")
    training = subprocess.Popen(
        [sys.executable, "-m", "butd.train", *TINY_CP, f"data.raw_dir={tiny_cp_raw}",
         f"data.cache_dir={tmp_path / 'linked'}", f"data.features_from={source}", "data.auto_prepare=true",
         "trainer.accelerator=cpu", "trainer.max_epochs=1", "logger=csv", "model.num_hid=32",
         f"hydra.run.dir={tmp_path / 'run'}", "+callbacks.pause._target_=tests.training.faults.PauseAt",
         f"+callbacks.pause.marker={marker}", f"+callbacks.pause.release={release}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert training.poll() is None and time.monotonic() < deadline, training.communicate()[1][-3000:]
        time.sleep(0.05)
    before = (source / "manifest.json").read_bytes()
    rebuild = subprocess.Popen(
        [sys.executable, "-m", "butd.prepare", *TINY_DATA, f"paths.data_dir={data_copy}", "force=true"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    waiting = ""
    while "waiting for it to be free" not in waiting:  # the rebuild's first line: it waits for the lock
        line = rebuild.stdout.readline()
        assert line, f"prepare ended without waiting: {waiting[-3000:]}"
        waiting += line
    assert f"the cache at {source} is in use by a training reading it" in waiting
    assert (source / "manifest.json").read_bytes() == before  # not rebuilt under the training
    release.write_text("go")
    _, stderr = training.communicate(timeout=300)
    assert training.returncode == 0, stderr[-3000:]
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= record["test/vqa_acc"] <= 100
    rebuild.communicate(timeout=300)
    assert rebuild.returncode == 0
    assert (source / "manifest.json").read_bytes() != before  # rebuilt once the training let go
