"""`data=gqa`'s reader and feature views (`butd.preparation.gqa`), on the tiny GQA-format set."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from butd.cache.load import load_cache
from butd.cache.manifest import CacheError
from butd.data.stores import split_nbytes
from butd.preparation.build import ensure_prepared, ensure_raw, prepare
from butd.preparation.formats import read_entries
from butd.preparation.gqa import N_IMAGE_BASE
from butd.vqa.gqa import GQATables
from tests.gqa_data import gqa_config


@pytest.fixture(scope="module")
def gqa_dir(tmp_path_factory):
    """The tiny GQA-format set, raw files and prepared cache."""
    data_dir = tmp_path_factory.mktemp("gqa")
    ensure_prepared(gqa_config(data_dir), progress=False)
    return data_dir


@pytest.fixture()
def raw_copy(gqa_dir, tmp_path):
    """A private copy of the raw files (a test may damage them), no cache."""
    shutil.copytree(gqa_dir / "synthetic_gqa" / "raw", tmp_path / "synthetic_gqa" / "raw")
    return tmp_path


def test_split_files_view_the_object_files_in_place_with_objects_num_boxes(gqa_dir):
    cfg = gqa_config(gqa_dir)
    raw = cfg.raw_path
    info = json.loads((raw / "objects" / "gqa_objects_info.json").read_text())
    questions = json.loads((raw / "questions1.2" / "val_balanced_questions.json").read_text())
    with h5py.File(cfg.cache_path / "val.h5", "r") as f:
        g = f["images"]
        assert g["features"].is_virtual and g["boxes"].is_virtual  # nothing copied
        image_ids = g["image_id"][:]
        assert (image_ids > N_IMAGE_BASE).all()  # the val images have GQA's "nN" ids
        row = 0
        entry = info[f"n{image_ids[row] - N_IMAGE_BASE}"]
        start, count = int(g["box_start"][row]), int(g["counts"][row])
        assert count == entry["objectsNum"]
        with h5py.File(raw / "objects" / f"gqa_objects_{entry['file']}.h5", "r") as src:
            feats = src["features"][entry["idx"], :count]
            boxes = src["bboxes"][entry["idx"], :count]
        np.testing.assert_array_equal(g["features"][start : start + count], feats)
        w, h = entry["width"], entry["height"]
        expected = np.concatenate([boxes / [w, h, w, h], (boxes[:, 2:] - boxes[:, :2]) / [w, h]], axis=1)
        np.testing.assert_allclose(g["spatial"][start : start + count], expected, rtol=1e-6)
        # hard targets: the one answer, score 1
        assert set(f["targets/scores"][:].tolist()) == {1.0}
        assert (
            f["questions/multiple_choice_answer"].asstr()[0] == questions[f["gqa/key"].asstr()[0]]["answer"]
        )
    tables = GQATables.read(cfg.cache_path / "val.h5")
    assert list(tables.key) == list(questions)  # GQA's ids, in file order
    # a feature store loads the split's own boxes, not every image's 6 rows of the object files
    with h5py.File(cfg.cache_path / "val.h5", "r") as f:
        own = int(f["images/counts"][:].sum())
        assert own < f["images/features"].shape[0]
    assert split_nbytes(cfg.cache_path / "val.h5") == own * 16 * 2
    assert tables.valid is not None and tables.entailed[1].size > 0


def _prepare_error(data_dir) -> str:
    with pytest.raises(CacheError) as err:
        prepare(gqa_config(data_dir), progress=False)
    return str(err.value)


def _edit_info(data_dir, edit) -> str:
    path = data_dir / "synthetic_gqa" / "raw" / "objects" / "gqa_objects_info.json"
    info = json.loads(path.read_text())
    image = sorted(info)[0]
    edit(info[image])
    path.write_text(json.dumps(info))
    return image


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda e: e.update(file=7), "points to file 7, which does not exist"),
        (lambda e: e.update(idx=10_000), "points to row 10000 of"),
        (lambda e: e.update(objectsNum=7), "objectsNum=7, more than the 6 boxes"),
    ],
    ids=["missing-file", "missing-row", "objects-num-over-boxes"],
)
def test_a_bad_objects_info_entry_is_named_with_its_image(raw_copy, edit, words):
    image = _edit_info(raw_copy, edit)
    message = _prepare_error(raw_copy)
    assert f"image {image} " in message and words in message
    assert not (raw_copy / "synthetic_gqa" / "cache" / "manifest.json").exists()


def test_questions_whose_image_has_no_features_are_counted(raw_copy):
    path = raw_copy / "synthetic_gqa" / "raw" / "objects" / "gqa_objects_info.json"
    info = json.loads(path.read_text())
    questions = json.loads((path.parents[1] / "questions1.2" / "train_balanced_questions.json").read_text())
    gone = next(iter(questions.values()))["imageId"]
    del info[gone]
    path.write_text(json.dumps(info))
    counts = prepare(gqa_config(raw_copy), progress=False).counts.splits["train"]
    lost = sum(q["imageId"] == gone for q in questions.values())
    assert counts.dropped_questions == lost > 0
    assert counts.questions == len(questions) - lost


def test_a_vqa_file_given_to_gqa_and_a_gqa_file_given_to_vqa_say_what_they_are(raw_copy, tiny_data_dir):
    raw = raw_copy / "synthetic_gqa" / "raw"
    gqa_file = raw / "questions1.2" / "val_balanced_questions.json"
    with pytest.raises(CacheError, match="is a GQA questions file .* use data=gqa"):
        read_entries(gqa_file, "questions", "vqa2")
    with pytest.raises(CacheError, match="is a GQA questions file .* use data=gqa"):
        read_entries(gqa_file, "questions", "vqacp")
    vqa = tiny_data_dir / "synthetic" / "raw" / "v2_OpenEnded_mscoco_val2014_questions.json"
    shutil.copy(vqa, gqa_file)
    message = _prepare_error(raw_copy)
    assert "is a VQA v2 questions file" in message and "use data=vqa2" in message
    assert "\n" not in message


def test_the_all_questions_read_the_chunked_train_folder(gqa_dir, tmp_path):
    shutil.copytree(gqa_dir / "synthetic_gqa" / "raw", tmp_path / "synthetic_gqa" / "raw")
    overrides = [
        "data.questions.train=questions1.2/train_all_questions",
        "data.questions.val=questions1.2/val_all_questions.json",
        "data.questions.testdev=questions1.2/testdev_all_questions.json",
    ]
    cfg = gqa_config(tmp_path, overrides)
    ensure_raw(cfg, progress=False)
    info = prepare(cfg, progress=False)
    balanced = prepare(gqa_config(gqa_dir), progress=False)
    assert info.counts.splits["train"].questions > balanced.counts.splits["train"].questions
    tables = GQATables.read(cfg.cache_path / "val.h5")
    assert not tables.balanced.all() and tables.balanced.any()


def test_a_cache_whose_object_file_is_gone_is_refused_at_load(raw_copy):
    cfg = gqa_config(raw_copy)
    prepare(cfg, progress=False)
    (cfg.raw_path / "objects" / "gqa_objects_0.h5").unlink()
    with pytest.raises(CacheError, match="gqa_objects_0.h5 is missing .*download_gqa.sh objects"):
        load_cache(cfg)


def test_a_question_without_image_id_is_named(raw_copy):
    path = raw_copy / "synthetic_gqa" / "raw" / "questions1.2" / "val_balanced_questions.json"
    questions = json.loads(path.read_text())
    key = list(questions)[3]
    del questions[key]["imageId"]
    path.write_text(json.dumps(questions))
    message = _prepare_error(raw_copy)
    assert f"question {key!r} has no imageId" in message and str(path) in message
