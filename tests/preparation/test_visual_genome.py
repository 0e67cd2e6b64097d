"""Visual Genome as extra training data: the v1.2 reader, what it keeps and drops, the `vg` split
of the cache, the generated VG files, and a training run that reads them."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from butd.cache.manifest import CacheError, cache_settings
from butd.config.data import DataConfig
from butd.errors import ConfigError
from butd.preparation.build import ensure_prepared, prepare
from butd.preparation.raw_files import LEDGER
from butd.preparation.synthetic import SyntheticSpec, generate
from butd.preparation.visual_genome import (
    OTHER_TYPE,
    VisualGenomeError,
    answer_type,
    question_type,
    read_pairs,
    select_pairs,
)
from tests.conftest import TINY_DATA, compose_train

#: the tiny synthetic set with generated VG files, its own folders (data=synthetic_vg)
TINY_VG = ["data=synthetic_vg", *TINY_DATA[1:], "data.synthetic.vg_questions_per_image=2"]


def _qa(qa_id: int, image_id: int, question: str, answer: str) -> dict:
    return {"qa_id": qa_id, "image_id": image_id, "question": question, "answer": answer, "a_objects": []}


def _write_vg(folder: Path, pairs: list[dict], images: list[dict]) -> tuple[Path, Path]:
    by_image: dict[int, list] = {}
    for qa in pairs:
        by_image.setdefault(qa["image_id"], []).append(qa)
    questions, image_data = folder / "question_answers.json", folder / "image_data.json"
    questions.write_text(json.dumps([{"id": i, "qas": qas} for i, qas in by_image.items()]))
    image_data.write_text(json.dumps(images))
    return questions, image_data


#: VG image -> COCO image: 1 and 6 train, 4 val, 5 a COCO image no split uses; 2 not COCO, 3 no key
IMAGES = [
    {"image_id": 1, "coco_id": 100, "width": 500, "height": 375},
    {"image_id": 2, "coco_id": None},
    {"image_id": 3, "url": "no coco_id key"},
    {"image_id": 4, "coco_id": 200},
    {"image_id": 5, "coco_id": 300},
    {"image_id": 6, "coco_id": 101},
]
PAIRS = [
    _qa(11, 1, "How many dogs are there?", "Two."),
    _qa(12, 1, "What is on the bed?", "Two dogs."),
    _qa(13, 6, "Is the man happy?", "Yes."),
    _qa(14, 6, "Where is this photo taken?", "The kitchen."),
    _qa(15, 6, "What colour is the cube?", "Purple."),  # not in the vocabulary
    _qa(16, 2, "How many cats?", "Two."),  # not a COCO image
    _qa(17, 3, "How many cats?", "Two."),  # no coco_id key at all
    _qa(18, 4, "How many cats?", "Two."),  # a val2014 image
    _qa(19, 5, "How many cats?", "Two."),  # a COCO image of no split
]
ANSWERS = ["2", "2 dogs", "yes", "kitchen", "red"]


def _select(tmp_path: Path, *, answer_count: int = 1, pairs=PAIRS, images=IMAGES):
    questions, image_data = _write_vg(tmp_path, pairs, images)
    return select_pairs(
        questions_path=questions,
        images_path=image_data,
        split_images={"train": {100, 101}, "val": {200}},
        image_splits=["train"],
        answers=ANSWERS,
        answer_count=answer_count,
        question_types={"how many", "what is", "is the", "where is", "what"},
    )


def test_kept_and_dropped_pairs_are_counted_by_reason(tmp_path):
    vg = _select(tmp_path)
    assert vg.counts() == {
        "pairs": 9,
        "kept": 4,
        "dropped": {
            "duplicate_qa_id": 0,
            "no_coco_id": 2,
            "held_out_image": 1,
            "image_in_no_split": 1,
            "answer_not_in_vocabulary": 1,
            "image_without_features": 0,
        },
    }
    # kept pairs point at the COCO image, keep their VG question and qa_id
    assert [(q["question_id"], q["image_id"]) for q in vg.questions] == [
        (11, 100),
        (12, 100),
        (13, 101),
        (14, 101),
    ]
    assert vg.questions[0]["question"] == "How many dogs are there?"


def test_vg_answers_are_normalised_as_the_official_code_does(tmp_path):
    vg = _select(tmp_path)
    assert [a["multiple_choice_answer"] for a in vg.annotations] == ["2", "2 dogs", "yes", "kitchen"]
    assert [a["answer_type"] for a in vg.annotations] == ["number", "other", "yes/no", "other"]
    assert [a["question_type"] for a in vg.annotations] == ["how many", "what is", "is the", "where is"]


@pytest.mark.parametrize("count", [1, 3, 10])
def test_one_vg_answer_counts_as_answer_count_annotators(tmp_path, count):
    vg = _select(tmp_path, answer_count=count)
    for a in vg.annotations:
        assert a["answers"] == [
            {"answer": a["multiple_choice_answer"], "answer_id": k + 1} for k in range(count)
        ]


def test_question_and_answer_types():
    types = {"what", "what color is the", "how many"}
    assert question_type("What color is the cat?", types) == "what color is the"
    assert question_type("What is it?", types) == "what"
    assert question_type("Why is he here?", types) == OTHER_TYPE
    assert (answer_type("no"), answer_type("12"), answer_type("2 dogs")) == ("yes/no", "number", "other")


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({"qas": []}, "the file holds a dict"),
        ([{"id": 1, "questions": []}], "entry 0 has no 'qas' list"),
        ([{"id": 1, "qas": [{"qa_id": 1, "image_id": 1, "question": "Why?"}]}], "qas[0] has no str 'answer'"),
        (
            [{"id": 1, "qas": [{"qa_id": "1", "image_id": 1, "question": "Why?", "answer": "x"}]}],
            "int 'qa_id'",
        ),
    ],
)
def test_a_question_file_in_another_layout_is_refused_naming_the_field(tmp_path, content, field):
    path = tmp_path / "question_answers.json"
    path.write_text(json.dumps(content))
    with pytest.raises(VisualGenomeError) as err:
        read_pairs(path)
    assert str(path) in str(err.value) and field in str(err.value)
    assert "'qas', a list of {'qa_id', 'image_id', 'question', 'answer'}" in str(err.value)


def test_an_image_file_without_image_ids_is_refused(tmp_path):
    with pytest.raises(VisualGenomeError, match=r"entry 1 has no integer 'image_id'.*'coco_id'"):
        _select(tmp_path, images=[{"image_id": 1, "coco_id": 100}, {"id": 2, "coco_id": 101}])


# ---------------------------------------------------------------------------------------------
# Config


def _data(tmp_path: Path, overrides: list[str]) -> DataConfig:
    cfg = compose_train([*TINY_VG, *overrides], data_dir=tmp_path, output_dir=tmp_path / "run")
    return DataConfig.from_dict(cfg.data)


def test_config_defaults_and_training_splits(tmp_path):
    data = _data(tmp_path, [])
    assert data.extra_train == ["vg"] and data.training_splits == ["train", "vg"]
    assert data.vg == {
        "questions": "visual_genome/question_answers.json",
        "images": "visual_genome/image_data.json",
        "answer_count": 1,
        "image_splits": ["train"],
    }
    assert data.cache_dir == f"{tmp_path}/synthetic_vg/cache"
    plain = DataConfig.from_dict(compose_train(TINY_DATA, data_dir=tmp_path, output_dir=tmp_path).data)
    assert plain.extra_train == [] and plain.training_splits == ["train"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "data.extra_train=[coco_captions]",
            r"\['coco_captions'\], which butd does not know; known: \['vg'\]",
        ),
        ("data.vg.answer_count=0", r"data.vg.answer_count=0 is invalid; expected .* from 1"),
        ("data.vg.answer_count=11", r"data.vg.answer_count=11 is invalid"),
        ("+data.vg.answers=3", r"data.vg has unknown keys \['answers'\]"),
        ("data.vg.image_splits=[test]", r"data.vg.image_splits=\['test'\] is invalid; expected .*prepared"),
        ("data.train_splits=[train,vg]", r"data.extra_train \['vg'\] is also a split"),
        (
            "data.extra_data=[]",
            r"data.extra_train=\['vg'\] trains on \['vg'\], which the cache does not prepare",
        ),
    ],
)
def test_bad_settings_are_config_errors(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        _data(tmp_path, [override])


def test_a_cache_without_extra_train_has_the_settings_it_had_before(tmp_path):
    plain = DataConfig.from_dict(compose_train(TINY_DATA, data_dir=tmp_path, output_dir=tmp_path).data)
    assert sorted(cache_settings(plain)) == [
        "answer_splits",
        "boxes",
        "emb_dim",
        "format_version",
        "max_question_len",
        "min_answer_count",
        "min_boxes",
        "normalize_annotator_answers",
        "num_boxes",
        "prepare_splits",
        "synthetic",
        "unknown_token",
        "vocab_splits",
    ]
    with_vg = cache_settings(_data(tmp_path, []))
    assert with_vg["extra_data"] == ["vg"] and with_vg["vg"]["answer_count"] == 1
    # training with or without the split vg reads the same cache (the rows of a study)
    assert cache_settings(_data(tmp_path, ["data.extra_train=[]"])) == with_vg


# ---------------------------------------------------------------------------------------------
# Generated files -> cache


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LEDGER  # (the ledger of written files holds their times)
    }


def test_the_generator_adds_vg_files_without_changing_the_others(tmp_path):
    spec = dict(num_train_images=8, num_val_images=4, questions_per_image=3, num_boxes=4, feature_dim=16)
    plain = _digest(Path(generate(tmp_path / "plain", SyntheticSpec(**spec))["glove"]).parents[1])
    paths = generate(tmp_path / "vg", SyntheticSpec(**spec, vg_questions_per_image=5))
    with_vg = _digest(tmp_path / "vg")
    assert {k: v for k, v in with_vg.items() if not k.startswith("visual_genome/")} == plain
    qas = json.loads(paths["vg_questions"].read_text())
    images = json.loads(paths["vg_images"].read_text())
    assert len(images) == 12 + 1 and [i["coco_id"] for i in images].count(None) == 1
    answers = [qa["answer"] for image in qas for qa in image["qas"]]
    assert len(answers) == 13 * 5 and all(a[0].isupper() and a.endswith(".") for a in answers)
    assert len({qa["qa_id"] for image in qas for qa in image["qas"]}) == len(answers)


@pytest.fixture(scope="module")
def vg_cache(tmp_path_factory) -> tuple[DataConfig, object]:
    data_dir = tmp_path_factory.mktemp("vg")
    cfg = DataConfig.from_dict(compose_train(TINY_VG, data_dir=data_dir, output_dir=data_dir / "run").data)
    return cfg, ensure_prepared(cfg, progress=False)


def test_prepare_writes_the_vg_split_and_records_its_counts(vg_cache, caplog):
    cfg, info = vg_cache
    counts = info.counts.visual_genome
    # 56 COCO images and 3 others (5%), 2 pairs each; the 16 val images' pairs are held out
    assert counts["pairs"] == (40 + 16 + 3) * 2
    dropped = counts["dropped"]
    assert (dropped["no_coco_id"], dropped["held_out_image"], dropped["image_in_no_split"]) == (6, 32, 0)
    assert dropped["answer_not_in_vocabulary"] > 0 and dropped["image_without_features"] == 0
    assert counts["kept"] == counts["pairs"] - sum(dropped.values()) == info.counts.splits["vg"].questions
    assert info.manifest.settings["extra_data"] == ["vg"]
    with h5py.File(info.split_path("vg")) as f, h5py.File(info.split_path("train")) as t:
        vg_images = set(f["questions/image_id"][:].tolist())
        assert vg_images <= set(t["questions/image_id"][:].tolist())  # train images only
        np.testing.assert_array_equal(f["targets/scores"][:], np.full(counts["kept"], 0.3, np.float32))
        np.testing.assert_array_equal(f["vqa_acc/scores"][:], f["targets/scores"][:])
        assert f["questions/question"].asstr()[0][0].isupper()


def test_answer_count_ten_scores_the_vg_answer_as_certain(vg_cache, tmp_path):
    cfg, _ = vg_cache
    certain = replace(cfg, vg={**cfg.vg, "answer_count": 10}, cache_dir=str(tmp_path / "cache"))
    info = prepare(certain, progress=False)
    with h5py.File(info.split_path("vg")) as f:
        assert set(f["targets/scores"][:].tolist()) == {1.0}
    assert info.manifest.settings["vg"]["answer_count"] == 10


def test_prepare_reports_one_line_per_fact(vg_cache, tmp_path, caplog):
    cfg, info = vg_cache
    with caplog.at_level("INFO", logger="butd.preparation.visual_genome"):
        prepare(replace(cfg, cache_dir=str(tmp_path / "cache")), progress=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "butd.preparation.visual_genome"]
    dropped = info.counts.visual_genome["dropped"]
    assert lines == [
        "visual genome: 118 question-answer pairs read",
        "visual genome: 6 pairs dropped: their image is not a COCO image (no coco_id in image_data.json)",
        "visual genome: 32 pairs dropped: their COCO image belongs to a split not in data.vg.image_splits "
        "(e.g. val2014)",
        f"visual genome: {dropped['answer_not_in_vocabulary']} pairs dropped: their normalised answer is not "
        "in the answer vocabulary",
        f"visual genome: {info.counts.visual_genome['kept']} pairs kept as training questions (split vg)",
    ]


def test_image_splits_choose_the_images_vg_pairs_may_use(vg_cache, tmp_path):
    cfg, _ = vg_cache
    on_val = replace(cfg, vg={**cfg.vg, "image_splits": ["val"]}, cache_dir=str(tmp_path / "cache"))
    info = prepare(on_val, progress=False)
    assert info.counts.visual_genome["dropped"]["held_out_image"] == 40 * 2  # now the train images
    with h5py.File(info.split_path("vg")) as f, h5py.File(info.split_path("val")) as v:
        assert set(f["questions/image_id"][:].tolist()) <= set(v["questions/image_id"][:].tolist())


def test_no_usable_pair_is_an_error_with_the_counts(vg_cache, tmp_path):
    cfg, _ = vg_cache
    (cfg.raw_path / "visual_genome" / "no_pairs.json").write_text("[]")
    no_pairs = {**cfg.vg, "questions": "visual_genome/no_pairs.json"}
    with pytest.raises(CacheError, match=r"no Visual Genome pair of .* is usable \(0 read"):
        prepare(replace(cfg, cache_dir=str(tmp_path / "cache"), vg=no_pairs))


@pytest.mark.slow
def test_training_reads_train_and_vg_and_validates_on_val(vg_cache, tmp_path):
    """raw -> cache -> one epoch of a real Lightning fit, whose training set is train + vg."""
    from butd.train import train

    cfg, info = vg_cache
    composed = compose_train(
        [*TINY_VG, "trainer.accelerator=cpu", "logger=csv", "model.num_hid=32", "trainer.max_epochs=1"],
        data_dir=cfg.raw_path.parents[1],
        output_dir=tmp_path / "run",
    )
    summary = train(composed)
    counts = info.counts.splits
    questions = counts["train"].questions + counts["vg"].questions
    assert counts["vg"].questions > 0
    assert [r["step"] for r in summary["history"]] == [math.ceil(questions / 16)]
    assert 0 < summary["val/score"] <= summary["val/upper_bound"]


def _crafted(cfg: DataConfig, name: str, change) -> dict:
    """data.vg with its questions file replaced by a copy of the generated one that `change` edits."""
    qas = json.loads((cfg.raw_path / cfg.vg["questions"]).read_text())
    change(qas)
    (cfg.raw_path / "visual_genome" / name).write_text(json.dumps(qas))
    return {**cfg.vg, "questions": f"visual_genome/{name}"}


def test_pairs_sharing_a_qa_id_are_counted_and_dropped_not_given_one_answer(vg_cache, tmp_path):
    """Two kept pairs made to share a qa_id: both dropped, counted in the manifest, none trained on."""
    cfg, info = vg_cache
    with h5py.File(info.split_path("vg")) as f:
        kept = f["questions/question_id"][:2].tolist()

    def share(qas):
        pairs = {qa["qa_id"]: qa for image in qas for qa in image["qas"]}
        pairs[kept[1]]["qa_id"] = kept[0]

    crafted = replace(cfg, cache_dir=str(tmp_path / "cache"), vg=_crafted(cfg, "shared.json", share))
    shared = prepare(crafted, progress=False)
    counts = shared.counts.visual_genome
    assert counts["dropped"]["duplicate_qa_id"] == 2
    assert counts["kept"] == info.counts.visual_genome["kept"] - 2
    with h5py.File(shared.split_path("vg")) as f:
        assert kept[0] not in f["questions/question_id"][:].tolist()


@pytest.mark.slow
def test_a_nul_in_a_vg_question_stops_prepare_with_one_line(vg_cache, tmp_path):
    """`python -m butd.prepare` on a question_answers.json whose first question holds a NUL."""
    import os
    import subprocess
    import sys

    cfg, _ = vg_cache

    def nul(qas):
        qas[0]["qas"][0]["question"] = "What color\x00 is the cube?"

    vg = _crafted(cfg, "nul.json", nul)
    data_dir = cfg.raw_path.parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "butd.prepare", *TINY_VG, f"paths.data_dir={data_dir}"]
        + [f"data.vg.questions={vg['questions']}", f"data.cache_dir={tmp_path / 'cache'}"],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nul.json: entry 0, qas[0]" in lines[0]
    assert "control character '\\x00'" in lines[0]
    assert not (tmp_path / "cache" / "vg.h5").exists()
