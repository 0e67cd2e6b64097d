"""The official VQA metric against the oracles the official evaluation code produced."""

import json
import random

import pytest

from butd.evaluation import vqa_eval
from butd.vqa.official import ResultsError, VocabularyAccuracy, clean, normalize, question_accuracy


@pytest.fixture(scope="module")
def oracle(golden_dir):
    def load(name):
        return json.loads((golden_dir / f"vqa_eval_visible_{name}.json").read_text())

    return {k: load(k) for k in ("annotations", "questions", "results", "expected")}


def test_aggregates_match_the_official_code(oracle):
    got = vqa_eval(oracle["annotations"], oracle["questions"], oracle["results"])
    expected = oracle["expected"]["accuracy"]
    assert got["overall"] == expected["overall"] == 73.25
    assert got["perAnswerType"] == expected["perAnswerType"]
    assert got["perQuestionType"] == expected["perQuestionType"]
    # keys in order of first appearance, as the official dicts
    assert list(got["perQuestionType"]) == list(expected["perQuestionType"])


def test_per_question_and_per_type_breakdowns_match(oracle):
    got = vqa_eval(oracle["annotations"], oracle["questions"], oracle["results"])
    exp = oracle["expected"]
    per_q = got["perQuestion"]
    assert {str(q): round(v, 2) for q, v in per_q.items()} == exp["evalQA"]
    assert {str(q): round(v, 10) for q, v in per_q.items()} == exp["evalQA_n10"]
    for qtype, accs in exp["evalQuesType"].items():
        assert {q: round(per_q[int(q)], 2) for q in accs} == accs, qtype
    for atype, accs in exp["evalAnsType"].items():
        assert {q: round(per_q[int(q)], 2) for q in accs} == accs, atype


def test_ten_decimal_aggregates(oracle):
    got = vqa_eval(oracle["annotations"], oracle["questions"], oracle["results"], decimals=10)
    exp = oracle["expected"]["accuracy_n10"]
    assert got["overall"] == exp["overall"]
    assert got["perAnswerType"] == exp["perAnswerType"]
    assert got["perQuestionType"] == exp["perQuestionType"]


def test_inputs_are_not_edited_in_place(oracle):
    """The official code rewrites the GT answers; ours leaves the caller's data alone."""
    before = json.dumps(oracle["annotations"])
    vqa_eval(oracle["annotations"], oracle["questions"], oracle["results"])
    assert json.dumps(oracle["annotations"]) == before


def test_gt_answers_are_cleaned_and_normalised_as_the_official_code_left_them(oracle):
    for ann in oracle["annotations"]["annotations"]:
        cleaned = [clean(a["answer"]) for a in ann["answers"]]
        edited = cleaned if len(set(cleaned)) == 1 else [normalize(a) for a in cleaned]
        assert edited == oracle["expected"]["gt_answers_after_eval"][str(ann["question_id"])]


def test_unanimous_gt_is_not_normalised():
    gt = [{"answer": "2", "answer_id": i} for i in range(10)]
    assert question_accuracy(gt, "2") == 1.0
    assert question_accuracy(gt, "two") == 0.0
    mixed = gt[:9] + [{"answer": "3", "answer_id": 9}]
    assert question_accuracy(mixed, "two") == 1.0
    assert question_accuracy(mixed, "three") == pytest.approx(0.3)  # one match: 9 subsets of 1/3


@pytest.mark.parametrize("n,expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_leave_one_out_gives_the_soft_scores(n, expected):
    gt = [{"answer": "cat" if i < n else f"other{i}", "answer_id": i} for i in range(10)]
    assert question_accuracy(gt, "cat") == pytest.approx(expected)


def test_vocabulary_accuracy_equals_the_metric_for_every_answer(oracle):
    """The prepare-time table holds exactly the non-zero accuracies of every vocabulary answer."""
    rng = random.Random(0)
    anns = oracle["annotations"]["annotations"]
    pool = sorted({a["answer"] for ann in anns for a in ann["answers"]})
    pool += [r["answer"] for r in oracle["results"]] + ["yes", "no", "2", "ten", "black white"]
    answers = list(dict.fromkeys(pool))
    rng.shuffle(answers)
    table = VocabularyAccuracy(answers)
    hits = 0
    for ann in anns:
        got = table(ann["answers"])
        want = {i: question_accuracy(ann["answers"], a) for i, a in enumerate(answers)}
        assert got == {i: v for i, v in want.items() if v > 0}
        hits += len(got)
    assert hits > len(anns)


def _results(oracle):
    return [dict(r) for r in oracle["results"]]


def test_missing_unknown_and_duplicated_ids_are_reported(oracle):
    results = _results(oracle)
    with pytest.raises(ResultsError, match=r"1 question ids missing \(e.g. 9000\)"):
        vqa_eval(oracle["annotations"], oracle["questions"], results[1:])
    with pytest.raises(ResultsError, match=r"1 question ids not in the annotations \(e.g. 123\)"):
        vqa_eval(oracle["annotations"], oracle["questions"], [*results, {"question_id": 123, "answer": "x"}])
    with pytest.raises(ResultsError, match=r"1 question ids duplicated \(e.g. 9001\).*butd.predict"):
        vqa_eval(oracle["annotations"], oracle["questions"], [*results, results[1]])


def test_malformed_inputs_are_named(oracle):
    with pytest.raises(ResultsError, match=r"results\[0\].*'question_id' and 'answer'"):
        vqa_eval(oracle["annotations"], None, [{"id": 1}])
    with pytest.raises(ResultsError, match="answer 3 of question 9000 is not a string"):
        vqa_eval(oracle["annotations"], None, [{"question_id": 9000, "answer": 3}])
    with pytest.raises(ResultsError, match="not in the questions file"):
        vqa_eval(oracle["annotations"], {"questions": []}, _results(oracle))
    with pytest.raises(ResultsError, match="'annotations' list"):
        vqa_eval({"questions": []}, None, [])
