"""The official metric's tables in the prepared cache, and the batches that carry them."""

import json

import h5py
import numpy as np
import pytest
import torch

from butd.cache.load import load_cache
from butd.config.data import DataConfig
from butd.data.datamodule import VQABatches
from butd.errors import UserError
from butd.evaluation import vqa_eval
from butd.training.metrics import VQAAccuracy
from butd.vqa.csr import gather_rows
from butd.vqa.official import ANSWER_TYPES, annotations_from_cache, official_tables, question_accuracy
from tests.conftest import TINY_DATA, compose_train


def _setup(data_dir):
    cfg = DataConfig.from_dict(compose_train(TINY_DATA, data_dir=data_dir, output_dir=data_dir / "x").data)
    info = load_cache(cfg)
    anns = json.loads((cfg.raw_path / cfg.annotations["val"]).read_text())
    return cfg, info, anns


def test_tables_hold_the_official_accuracy_of_every_answer(tiny_data_dir):
    _, info, anns = _setup(tiny_data_dir)
    answers = info.answers()
    with h5py.File(info.split_path("val")) as f:
        offsets, labels, scores = (f[f"vqa_acc/{k}"][:] for k in ("offsets", "labels", "scores"))
        assert f["questions/gt_answers"].shape == (len(anns["annotations"]), 10)
    for i, ann in enumerate(anns["annotations"]):
        lo, hi = offsets[i], offsets[i + 1]
        got = dict(zip(labels[lo:hi].tolist(), scores[lo:hi].tolist(), strict=True))
        want = {j: question_accuracy(ann["answers"], a) for j, a in enumerate(answers)}
        want = {j: v for j, v in want.items() if v > 0}
        assert got.keys() == want.keys()
        assert np.allclose(list(got.values()), list(want.values()), atol=1e-6)


def test_annotations_rebuilt_from_the_cache_evaluate_like_the_raw_file(tiny_data_dir):
    _, info, anns = _setup(tiny_data_dir)
    with h5py.File(info.split_path("val")) as f:
        rebuilt = annotations_from_cache(f)
    rng = np.random.default_rng(0)
    pool = info.answers() + ["Two", "red.", "the cube"]
    results = [
        {"question_id": a["question_id"], "answer": pool[rng.integers(len(pool))]}
        for a in anns["annotations"]
    ]
    assert vqa_eval(rebuilt, None, results) == vqa_eval(anns, None, results)


def test_batches_carry_the_table_and_the_metric_gathers_it(tiny_data_dir):
    """VQAAccuracy over batches equals vqa_eval on the same argmax answers, overall and per type."""
    _, info, anns = _setup(tiny_data_dir)
    answers = info.answers()
    ds = VQABatches(info.split_path("val"), num_answers=info.num_answers)
    logits = torch.randn(len(ds), info.num_answers, generator=torch.Generator().manual_seed(0))
    overall, per_type = (
        VQAAccuracy(),
        {t: VQAAccuracy(answer_type=i) for i, t in enumerate(ANSWER_TYPES)},
    )
    for start in range(0, len(ds), 7):  # uneven batches
        idx = list(range(start, min(start + 7, len(ds))))
        batch = ds[idx]
        assert batch.acc_labels.shape == batch.acc_values.shape and batch.acc_labels.dtype == torch.long
        args = (logits[idx], batch.acc_labels, batch.acc_values, batch.answer_type)
        overall.update(*args)
        for m in per_type.values():
            m.update(*args)
    pred = logits.argmax(1).tolist()
    qids = ds.questions.question_id.tolist()
    official = vqa_eval(
        anns, None, [{"question_id": q, "answer": answers[p]} for q, p in zip(qids, pred, strict=True)]
    )
    assert abs(overall.compute().item() - official["overall"]) < 0.006
    for t, m in per_type.items():
        assert abs(m.compute().item() - official["perAnswerType"][t]) < 0.006


def test_gather_rows_pads_each_row():
    offsets = np.array([0, 2, 2, 5])
    labels = np.array([4, 1, 7, 8, 9])
    values = np.array([0.3, 1.0, 0.6, 0.9, 0.3], np.float32)
    lab, val = gather_rows(offsets, labels, values, np.array([2, 1, 0]))
    assert lab.tolist() == [[7, 8, 9], [-1, -1, -1], [4, 1, -1]]
    assert np.allclose(val, [[0.6, 0.9, 0.3], [0, 0, 0], [0.3, 1.0, 0]])
    lab, val = gather_rows(offsets, labels, values, np.array([1]))
    assert lab.shape == (1, 1) and lab[0, 0] == -1


def test_an_annotation_with_fewer_answers_is_named_even_when_it_comes_first():
    def ann(qid: int, n: int) -> dict:
        return {"question_id": qid, "answers": [{"answer": "yes"}] * n}

    with pytest.raises(UserError, match=r"question 1 has 9 annotator answers, most have 10"):
        official_tables([ann(1, 9), ann(2, 10), ann(3, 10)], ["yes"])
