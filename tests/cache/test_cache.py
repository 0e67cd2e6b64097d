"""`prepare` on a generated synthetic set: the cache's content, idempotence and refusals."""

import json
import os
import shutil

import h5py
import numpy as np
import pytest

from butd.cache.load import load_cache
from butd.cache.manifest import MANIFEST, CacheError, Manifest, prepare_command
from butd.config.data import DataConfig
from butd.data.datamodule import VQADataModule
from butd.errors import UserError
from butd.preparation.build import prepare
from butd.vqa.answers import compute_targets
from butd.vqa.features import decode_row, iter_tsv
from butd.vqa.text import Vocabulary
from tests.conftest import TINY_DATA, compose_train


def _data_cfg(data_dir, *overrides) -> DataConfig:
    cfg = compose_train([*TINY_DATA, *overrides], data_dir=data_dir, output_dir=data_dir / "x")
    return DataConfig.from_dict(cfg.data)


def test_cache_content_matches_raw_files(tiny_data_dir):
    cfg = _data_cfg(tiny_data_dir)
    info = load_cache(cfg)
    raw = cfg.raw_path
    anns = json.loads((raw / cfg.annotations["val"]).read_text())["annotations"]
    qs = json.loads((raw / cfg.questions["val"]).read_text())["questions"]
    answers = info.answers()
    vocab = info.vocabulary()
    assert info.num_answers == len(answers) and info.ntoken == len(vocab)
    assert info.feature_dim == 32 and info.num_boxes == 6
    assert info.glove().shape == (len(vocab), 50)
    # words missing from the GloVe file stay zero
    assert info.counts.glove_words_found < len(vocab)
    assert (np.abs(info.glove()).sum(1) == 0).sum() == len(vocab) - info.counts.glove_words_found

    rows = {}
    for line_no, line in iter_tsv(raw / cfg.features[0]):
        item = decode_row(line, line_no=line_no)
        rows[item.image_id] = item
    targets = compute_targets(anns, answers)
    with h5py.File(info.split_path("val")) as f:
        q = f["questions"]
        assert list(q["question_id"][:]) == [a["question_id"] for a in anns]
        for i in (0, len(anns) - 1):
            assert list(q["tokens"][i]) == vocab.encode(qs[i]["question"], max_len=14)
            row = q["image_index"][i]
            image_id = int(q["image_id"][i])
            assert int(f["images/image_id"][row]) == image_id
            lo, hi = f["images/box_offsets"][row : row + 2]
            np.testing.assert_allclose(
                f["images/features"][lo:hi], rows[image_id].features, rtol=1e-3, atol=1e-3
            )
            assert f["images/features"].dtype == np.float16
            lo, hi = f["targets/offsets"][i], f["targets/offsets"][i + 1]
            got = {
                answers[j]: float(s)
                for j, s in zip(f["targets/labels"][lo:hi], f["targets/scores"][lo:hi], strict=True)
            }
            assert got == pytest.approx(targets[i])
        box = f["images/boxes"][:6]  # the first image's boxes
        w, h = f["images/size"][0]
        np.testing.assert_allclose(f["images/spatial"][:6][:, 0], box[:, 0] / w, rtol=1e-6)
        np.testing.assert_allclose(f["images/spatial"][:6][:, 5], (box[:, 3] - box[:, 1]) / h, rtol=1e-6)


def test_prepare_is_idempotent(tiny_data_dir):
    cfg = _data_cfg(tiny_data_dir)
    # the lock file records each holder's pid: not part of the cache
    before = {p.name: p.stat().st_mtime_ns for p in cfg.cache_path.iterdir() if p.name != ".lock"}
    prepare(cfg, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in cfg.cache_path.iterdir() if p.name != ".lock"}
    assert before == after


def test_mismatched_cache_is_refused_with_the_difference(tiny_data_dir):
    with pytest.raises(CacheError) as err:
        load_cache(_data_cfg(tiny_data_dir, "data.min_answer_count=3"))
    assert "min_answer_count: cache has 2, config wants 3" in str(err.value)
    assert "python -m butd.prepare data=synthetic" in str(err.value)


def test_a_missing_cache_is_read_never_built_and_names_the_prepare_command(tmp_path):
    cfg = DataConfig.from_dict(compose_train(TINY_DATA, data_dir=tmp_path, output_dir=tmp_path / "x").data)
    assert cfg.auto_prepare  # the synthetic set: only the entry points prepare it
    with pytest.raises(CacheError) as err:
        VQADataModule(cfg).prepare_data()
    message = str(err.value)
    assert "manifest.json does not exist" in message and "`python -m butd.prepare data=synthetic`" in message
    assert "\n" not in message and not list(tmp_path.iterdir())  # nothing generated, nothing written


def test_wrong_box_count_is_named(tiny_data_dir, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(tiny_data_dir, data_dir)
    cfg = _data_cfg(data_dir, "data.num_boxes=5")
    os.remove(cfg.cache_path / MANIFEST)
    with pytest.raises(UserError, match="has 6 boxes but data.num_boxes=5"):
        prepare(cfg, progress=False)


def test_vocabulary_round_trips_through_the_cache(tiny_data_dir):
    info = load_cache(_data_cfg(tiny_data_dir))
    vocab = info.vocabulary()
    assert Vocabulary.from_json(vocab.to_json()).idx2word == vocab.idx2word


def test_test_splits_are_prepared_without_targets(tiny_data_dir):
    info = load_cache(_data_cfg(tiny_data_dir))
    with h5py.File(info.split_path("test2015")) as test, h5py.File(info.split_path("test-dev2015")) as dev:
        assert not test.attrs["has_targets"] and "targets" not in test and "vqa_acc" not in test
        dev_ids, test_ids = set(dev["questions/question_id"][:]), set(test["questions/question_id"][:])
        assert dev_ids < test_ids  # test-dev images are test2015 images, written to both files
        assert set(dev["images/image_id"][:]) < set(test["images/image_id"][:])


def test_the_manifest_record_reads_back_what_prepare_wrote(tiny_data_dir):
    """One record both ways: the JSON prepare wrote, read as a `Manifest`, is the same JSON again
    (keys in the same order), and it is the record `load_cache` hands to the readers."""
    cfg = _data_cfg(tiny_data_dir)
    path = cfg.cache_path / MANIFEST
    written = json.loads(path.read_text(encoding="utf-8"))
    record = Manifest.read(path, command=prepare_command(cfg))
    assert record.to_json() == written and list(record.to_json()) == list(written)
    assert list(record.to_json()["counts"]) == list(written["counts"])
    assert load_cache(cfg).manifest == record and record.counts.splits["val"].questions > 0
