"""The synthetic VQA v2 look-alike: official formats, determinism, and image-dependence."""

from __future__ import annotations

import base64
import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from butd.preparation.synthetic import (
    COLORS,
    GLOVE_EXTRA,
    GLOVE_MISSING,
    HPOS,
    SHAPES,
    SIZES,
    VPOS,
    Scene,
    SyntheticSpec,
    generate,
    sample_questions,
    sample_scenes,
)

SPEC = SyntheticSpec(num_train_images=600, num_val_images=200, seed=3)
TINY = dict(num_train_images=6, num_val_images=3, questions_per_image=4)


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return generate(tmp_path_factory.mktemp("raw"), SPEC)


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _read_tsv(path: Path) -> dict[int, tuple[int, int, np.ndarray, np.ndarray]]:
    """image_id -> (w, h, boxes [K, 4], features [K, D]) decoded the way the real reader does."""
    csv.field_size_limit(2**31 - 1)  # a 36 x 2048 feature field is ~400 kB, as in real files
    out = {}
    with path.open(newline="") as f:
        for image_id, w, h, k, boxes, feats in csv.reader(f, delimiter="\t"):
            k = int(k)
            b = np.frombuffer(base64.b64decode(boxes), dtype=np.float32).reshape(k, 4)
            v = np.frombuffer(base64.b64decode(feats), dtype=np.float32).reshape(k, -1)
            out[int(image_id)] = (int(w), int(h), b, v)
    return out


def _soft(answer: str, annotation: dict) -> float:
    n = sum(a["answer"] == answer for a in annotation["answers"])
    return min(1.0, 0.3 * n)


def test_files_have_official_names_and_keys(raw: dict[str, Path]) -> None:
    assert raw["train_questions"].name == "v2_OpenEnded_mscoco_train2014_questions.json"
    assert raw["val_annotations"].name == "v2_mscoco_val2014_annotations.json"
    assert raw["features"].name == "synthetic_trainval_10.tsv"
    assert raw["glove"].relative_to(raw["glove"].parents[1]) == Path("glove/glove.6B.300d.txt")
    for split in ("train", "val"):
        q = _load(raw[f"{split}_questions"])
        assert set(q) == {"info", "task_type", "data_type", "license", "data_subtype", "questions"}
        assert (q["task_type"], q["data_type"], q["data_subtype"]) == ("Open-Ended", "mscoco", f"{split}2014")
        assert set(q["questions"][0]) == {"image_id", "question", "question_id"}
        a = _load(raw[f"{split}_annotations"])
        assert set(a) == {"info", "license", "data_type", "data_subtype", "annotations"}
        assert a["data_subtype"] == f"{split}2014"
        for ann in a["annotations"]:
            assert set(ann) == {
                "question_type",
                "multiple_choice_answer",
                "answers",
                "image_id",
                "answer_type",
                "question_id",
            }
            assert [x["answer_id"] for x in ann["answers"]] == list(range(1, 11))
            assert {x["answer_confidence"] for x in ann["answers"]} <= {"yes", "maybe", "no"}
            tally = Counter(x["answer"] for x in ann["answers"])
            assert tally[ann["multiple_choice_answer"]] == max(tally.values())
        assert all(x["question"].endswith("?") for x in q["questions"])


def test_ids_are_consistent(raw: dict[str, Path]) -> None:
    tsv = _read_tsv(raw["features"])
    images: dict[str, set[int]] = {}
    for split in ("train", "val"):
        qs = _load(raw[f"{split}_questions"])["questions"]
        anns = _load(raw[f"{split}_annotations"])["annotations"]
        assert [(q["question_id"], q["image_id"]) for q in qs] == [
            (a["question_id"], a["image_id"]) for a in anns
        ]
        per_image = Counter(q["image_id"] for q in qs)
        assert set(per_image.values()) == {SPEC.questions_per_image}
        assert {q["question_id"] // 1000 for q in qs} == set(per_image)
        assert {q["question_id"] % 1000 for q in qs} == set(range(SPEC.questions_per_image))
        images[split] = set(per_image)
    assert len(images["train"]) == SPEC.num_train_images
    assert len(images["val"]) == SPEC.num_val_images
    assert not images["train"] & images["val"]
    assert set(tsv) == images["train"] | images["val"]


def test_tsv_decodes_to_valid_boxes_and_features(raw: dict[str, Path]) -> None:
    tsv = _read_tsv(raw["features"])
    widths = set()
    for w, h, boxes, feats in tsv.values():
        assert boxes.shape == (SPEC.num_boxes, 4)
        assert feats.shape == (SPEC.num_boxes, SPEC.feature_dim) and feats.dtype == np.float32
        assert (feats >= 0).all() and np.isfinite(feats).all()
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
        assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        widths.add(w)
    assert len(widths) > 10 and min(widths) >= 480 and max(widths) <= 640


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", SyntheticSpec(**TINY))
    b = generate(tmp_path / "b", SyntheticSpec(**TINY))
    c = generate(tmp_path / "c", SyntheticSpec(**TINY, seed=1))
    for key in a:
        assert a[key].read_bytes() == b[key].read_bytes(), key
        assert a[key].read_bytes() != c[key].read_bytes(), key


def test_large_k_and_feature_dim(tmp_path: Path) -> None:
    spec = SyntheticSpec(**TINY, num_boxes=36, feature_dim=2048, glove_dim=50)
    paths = generate(tmp_path, spec)
    assert paths["features"].name == "synthetic_trainval_36.tsv"
    assert paths["glove"].name == "glove.6B.50d.txt"
    for _, _, boxes, feats in _read_tsv(paths["features"]).values():
        assert boxes.shape == (36, 4) and feats.shape == (36, 2048)


def test_small_k_and_bad_specs() -> None:
    scenes = sample_scenes(SyntheticSpec(**TINY, num_boxes=4))
    assert all(1 <= len(s.objects) <= 4 and len(s.box_object) == 4 for s in scenes)
    with pytest.raises(ValueError):
        SyntheticSpec(num_boxes=3)
    with pytest.raises(ValueError):
        SyntheticSpec(min_objects=7)


def test_glove_file(raw: dict[str, Path]) -> None:
    rows = [line.split(" ") for line in raw["glove"].read_text().splitlines()]
    assert all(len(r) == SPEC.glove_dim + 1 for r in rows)
    words = {r[0] for r in rows}
    questions = _load(raw["train_questions"])["questions"]
    tokens = {w for q in questions for w in q["question"].replace("?", "").split()}
    assert set(GLOVE_MISSING) <= tokens and not set(GLOVE_MISSING) & words
    assert tokens - set(GLOVE_MISSING) <= words
    assert set(GLOVE_EXTRA) - tokens <= words


def test_answer_type_mix(raw: dict[str, Path]) -> None:
    anns = [a for s in ("train", "val") for a in _load(raw[f"{s}_annotations"])["annotations"]]
    share = Counter(a["answer_type"] for a in anns)
    assert abs(share["other"] / len(anns) - 0.45) < 0.05
    assert abs(share["number"] / len(anns) - 0.25) < 0.05
    assert abs(share["yes/no"] / len(anns) - 0.30) < 0.05
    truth = Counter(
        q.answer for q in sample_questions(sample_scenes(SPEC), SPEC) if q.answer_type == "yes/no"
    )
    assert 0.45 < truth["yes"] / (truth["yes"] + truth["no"]) < 0.55
    raw_answers = {x["answer"] for a in anns for x in a["answers"]}
    assert {"Yes", "two", "the cube"} & raw_answers  # answer normalisation has work to do


def _answer_from_scene(question: str, scene: Scene) -> str:
    """An independent reading of a question: every attribute word filters the objects."""
    words = question.rstrip("?").split()
    keep = list(scene.objects)
    for w in words[2:]:
        shape = w[:-1] if w.endswith("s") and w[:-1] in SHAPES else w
        for values, field in (
            (COLORS, "color"),
            (SHAPES, "shape"),
            (SIZES, "size"),
            (HPOS, "hpos"),
            (VPOS, "vpos"),
        ):
            if shape in values:
                keep = [o for o in keep if getattr(o, field) == values.index(shape)]
    if words[:2] == ["how", "many"]:
        return str(len(keep))
    if words[0] in ("is", "are"):
        return "yes" if keep else "no"
    assert len(keep) == 1, f"referent not unique: {question}"
    field = {"color": "color", "shape": "shape", "size": "size"}[words[1]]
    values = {"color": COLORS, "shape": SHAPES, "size": SIZES}[field]
    return values[getattr(keep[0], field)]


def test_answers_follow_from_the_scene(raw: dict[str, Path]) -> None:
    scenes = {s.image_id: s for s in sample_scenes(SPEC)}
    questions = sample_questions(list(scenes.values()), SPEC)
    for q in questions:
        assert _answer_from_scene(q.text, scenes[q.image_id]) == q.answer, q.text
    anns = {
        a["question_id"]: a for s in ("train", "val") for a in _load(raw[f"{s}_annotations"])["annotations"]
    }
    agree = np.mean([anns[q.question_id]["multiple_choice_answer"] == q.answer for q in questions])
    assert agree > 0.95


def test_linear_probe_reads_attributes_from_features(raw: dict[str, Path]) -> None:
    tsv = _read_tsv(raw["features"])
    xs: dict[str, list[np.ndarray]] = defaultdict(list)
    ys: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for scene in sample_scenes(SPEC):
        feats = tsv[scene.image_id][3]
        for k, owner in enumerate(scene.box_object):
            if owner >= 0:
                o = scene.objects[owner]
                xs[scene.split].append(feats[k])
                ys[scene.split].append((o.color, o.shape))
    x_tr = np.c_[np.array(xs["train2014"]), np.ones(len(xs["train2014"]))]
    x_va = np.c_[np.array(xs["val2014"]), np.ones(len(xs["val2014"]))]
    y_tr, y_va = np.array(ys["train2014"]), np.array(ys["val2014"])
    for col, n in ((0, len(COLORS)), (1, len(SHAPES))):
        w = np.linalg.lstsq(x_tr, np.eye(n)[y_tr[:, col]], rcond=None)[0]
        assert (np.argmax(x_va @ w, axis=1) == y_va[:, col]).mean() > 0.9


def test_question_only_oracle_is_weak(raw: dict[str, Path]) -> None:
    """Best answer per question string over train, scored on val, is far below the truth."""

    def pairs(split: str) -> list[tuple[str, dict]]:
        text = {q["question_id"]: q["question"] for q in _load(raw[f"{split}_questions"])["questions"]}
        return [(text[a["question_id"]], a) for a in _load(raw[f"{split}_annotations"])["annotations"]]

    prior: dict[str, Counter] = defaultdict(Counter)
    for text, ann in pairs("train"):
        prior[text][ann["multiple_choice_answer"]] += 1
    val = pairs("val")
    guess = [prior[t].most_common(1)[0][0] if prior[t] else "yes" for t, _ in val]
    exact = np.mean([g == a["multiple_choice_answer"] for g, (_, a) in zip(guess, val, strict=True)])
    soft = np.mean([_soft(g, a) for g, (_, a) in zip(guess, val, strict=True)])
    best = np.mean([_soft(a["multiple_choice_answer"], a) for _, a in val])
    assert exact < 0.45
    assert soft < best - 0.35


def test_test_splits_are_unannotated_and_test_dev_is_a_subset(tmp_path: Path) -> None:
    spec = SyntheticSpec(**TINY, num_test_images=12)
    paths = generate(tmp_path, spec)
    plain = generate(tmp_path / "plain", SyntheticSpec(**TINY))
    for key in plain:  # adding test images leaves train/val byte-identical
        assert plain[key].read_bytes() == paths[key].read_bytes(), key
    test = _load(paths["test_questions"])
    dev = _load(paths["test_dev_questions"])
    assert paths["test_dev_questions"].name == "v2_OpenEnded_mscoco_test-dev2015_questions.json"
    assert (test["data_subtype"], dev["data_subtype"]) == ("test2015", "test-dev2015")
    assert set(test) == {"info", "task_type", "data_type", "license", "data_subtype", "questions"}
    test_images = {q["image_id"] for q in test["questions"]}
    dev_images = {q["image_id"] for q in dev["questions"]}
    assert len(test_images) == 12 and 0 < len(dev_images) < 12 and dev_images <= test_images
    assert [q for q in test["questions"] if q["image_id"] in dev_images] == dev["questions"]
    trainval = set(_read_tsv(paths["features"]))
    assert set(_read_tsv(paths["test_features"])) == test_images and not test_images & trainval
    assert not list(tmp_path.glob("*test*annotations*"))


def test_the_study_stand_ins_prior_is_stronger_and_answers_still_follow_from_the_scene() -> None:
    """experiment=standin's knobs: Zipf shapes, per-shape Zipf colours, counts that follow the scenes."""
    from butd.preparation.synthetic import _color_orders

    spec = SyntheticSpec(num_train_images=600, num_val_images=200, seed=3, shape_skew=1.25,
                         color_skew=1.75, balance_counts=False)  # fmt: skip
    scenes = sample_scenes(spec)
    by_id = {s.image_id: s for s in scenes}
    objects = [o for s in scenes for o in s.objects]
    shapes = Counter(o.shape for o in objects)
    assert shapes.most_common(1)[0][0] == 0 and shapes[0] > 2 * shapes[len(SHAPES) - 1]
    orders = _color_orders(spec)
    for shape in range(len(SHAPES)):
        colors = Counter(o.color for o in objects if o.shape == shape)
        assert colors.most_common(1)[0][0] == orders[shape][0]  # each shape's own likely colour

    def oracle(spec: SyntheticSpec) -> float:
        """Exact accuracy on val of the most common train answer of each question string."""
        questions = sample_questions(sample_scenes(spec), spec)
        split = {s.image_id: s.split for s in sample_scenes(spec)}
        prior: dict[str, Counter] = defaultdict(Counter)
        for q in questions:
            if split[q.image_id] == "train2014":
                prior[q.text][q.answer] += 1
        val = [q for q in questions if split[q.image_id] == "val2014"]
        return float(np.mean([(prior[q.text].most_common(1) or [("",)])[0][0] == q.answer for q in val]))

    uniform = SyntheticSpec(num_train_images=600, num_val_images=200, seed=3)
    assert oracle(spec) > oracle(uniform) + 0.15
    questions = sample_questions(scenes, spec)
    for q in questions:
        assert _answer_from_scene(q.text, by_id[q.image_id]) == q.answer, q.text
    counts = Counter(q.answer for q in questions if q.answer_type == "number")
    assert counts.most_common(1)[0][0] == "1"  # asked about what is in the image
