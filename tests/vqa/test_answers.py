"""Answer normalisation, soft scores and targets against the reference's golden output."""

import json
from pathlib import Path

import pytest

from butd.vqa.answers import (
    answer_vocabulary,
    compute_targets,
    normalize_answer,
    process_digit_article,
    process_punctuation,
    reference_targets,
    soft_score,
)


def _load(golden_dir: Path, name: str) -> dict:
    return json.loads((golden_dir / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def softscore(golden_dir: Path) -> dict:
    return _load(golden_dir, "softscore_targets_visible.json")


def test_answer_normalization_matches_golden(golden_dir: Path) -> None:
    cases = _load(golden_dir, "answer_normalization_visible.json")["cases"]
    assert len(cases) == 120
    wrong = []
    for case in cases:
        got = {
            "after_process_punctuation": process_punctuation(case["input"]),
            "after_process_digit_article": process_digit_article(case["after_process_punctuation"]),
            "output": normalize_answer(case["input"]),
        }
        for field, value in got.items():
            if value != case[field]:
                wrong.append((case["category"], case["input"], field, value, case[field]))
    assert not wrong, "\n".join(map(repr, wrong))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("x." * 32 + "y", "x" * 32 + "y"),  # exactly 32 periods: all removed
        ("a." * 33, "a" * 32 + "a."),  # the 33rd period survives
        ("somebody'd", "somebodyd"),  # the reversed table entry
        ("Im", "im"),  # capitalised key never matches
        ("١,٢", "١٢"),  # Unicode digit,digit deletes the comma (Python 3 \d)
    ],
)
def test_normalization_quirks(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


def test_soft_score_matches_golden(golden_dir: Path) -> None:
    table = _load(golden_dir, "get_score.json")["get_score"]
    for count, score in table.items():
        got = soft_score(int(count))
        assert isinstance(got, float)
        assert got == pytest.approx(score)
    with pytest.raises(ValueError):
        soft_score(-1)


def test_answer_vocabulary_order_and_set(softscore: dict) -> None:
    answers = answer_vocabulary(softscore["annotations"], softscore["min_occurence"])
    assert set(answers) == set(softscore["ans2label"])
    assert answers == softscore["label2ans"]


def test_answer_vocabulary_counts_each_question_once() -> None:
    annotations = [
        {"question_id": 1, "multiple_choice_answer": "Two"},
        {"question_id": 1, "multiple_choice_answer": "2"},
        {"question_id": 2, "multiple_choice_answer": "cat"},
        {"question_id": 3, "multiple_choice_answer": "2."},
    ]
    assert answer_vocabulary(annotations, min_count=2) == ["2"]
    assert answer_vocabulary(annotations, min_count=1) == ["2", "cat"]


def test_reference_targets_match_golden(softscore: dict) -> None:
    answers, targets = reference_targets(softscore["annotations"], softscore["min_occurence"])
    assert answers == softscore["label2ans"]
    expected = softscore["targets_answer_to_score"]
    assert len(targets) == len(expected)
    for annotation, got, want in zip(softscore["annotations"], targets, expected, strict=True):
        assert annotation["question_id"] == want["question_id"]
        assert got == pytest.approx(want["answer_to_score"])
        assert all(isinstance(score, float) for score in got.values())


def test_reference_label_order_within_targets(softscore: dict) -> None:
    answers, targets = reference_targets(softscore["annotations"], softscore["min_occurence"])
    for got, ref in zip(targets, softscore["targets"], strict=True):
        assert [answers.index(a) for a in got] == ref["labels"]


def test_normalized_annotator_answers_fix(softscore: dict) -> None:
    annotations = softscore["annotations"]
    answers = softscore["label2ans"]
    by_qid = {a["question_id"]: i for i, a in enumerate(annotations)}
    quirky = compute_targets(annotations, answers)
    fixed = compute_targets(annotations, answers, normalize_annotator_answers=True)
    two = by_qid[73006]  # nine raw "Two" answers and one "none"
    assert quirky[two] == {}
    assert fixed[two] == {"2": 1.0}


def test_normalized_flag_on_synthetic_annotation() -> None:
    annotation = {
        "question_id": 7,
        "multiple_choice_answer": "2",
        "answers": [{"answer": a} for a in ["Two", "Two", "2", "two.", "the dog", "dog"]],
    }
    assert compute_targets([annotation], ["2", "dog"]) == [{"2": 0.3, "dog": 0.3}]
    assert compute_targets([annotation], ["2", "dog"], normalize_annotator_answers=True) == [
        {"2": 1.0, "dog": 0.6}
    ]
