"""The official GQA metrics (`butd.vqa.gqa`) on small cases worked out by hand, one per metric."""

from __future__ import annotations

import numpy as np
import pytest

from butd.vqa.gqa import GQATables, csr_pairs, gqa_metrics, reasoning_steps

ANSWERS = ["yes", "no", "red", "blue", "cube", "color"]
L = {a: i for i, a in enumerate(ANSWERS)}


def tables(rows: list[dict], **extra) -> GQATables:
    """GQA tables of hand-written questions: answer, structural, semantic, steps, group, balanced."""
    n = len(rows)

    def col(key, default):
        return np.array([r.get(key, default) for r in rows], dtype=object)

    return GQATables(
        question_id=np.arange(n, dtype=np.int64),
        key=np.array([f"{i:03d}" for i in range(n)], dtype=object),
        answer=col("answer", "yes"),
        structural=col("structural", "verify"),
        semantic=col("semantic", "obj"),
        detailed=col("detailed", "exist"),
        group=col("group", ""),
        steps=np.array([r.get("steps", 1) for r in rows], np.int64),
        balanced=np.array([r.get("balanced", True) for r in rows]),
        entailed=csr_pairs([np.array(r.get("entailed", []), np.int64) for r in rows]),
        **extra,
    )


def predict(*answers: str | None) -> np.ndarray:
    return np.array([-1 if a is None else L[a] for a in answers], np.int64)


def test_accuracy_binary_open_and_per_type_count_balanced_questions_only():
    t = tables(
        [
            {"answer": "yes", "structural": "verify", "semantic": "obj", "steps": 2},
            {"answer": "red", "structural": "query", "semantic": "attr", "steps": 3},
            {"answer": "blue", "structural": "query", "semantic": "attr", "steps": 3},
            {"answer": "cube", "structural": "query", "semantic": "obj", "steps": 4},
            {"answer": "no", "structural": "verify", "balanced": False},  # right, but not counted
        ]
    )
    m = gqa_metrics(t, predict("yes", "blue", "blue", "red", "no"), ANSWERS)
    assert m["accuracy"] == pytest.approx(50.0)  # 2 of the 4 balanced questions
    assert m["binary"] == pytest.approx(100.0)  # verify: 1 of 1
    assert m["open"] == pytest.approx(100 / 3)  # query: 1 of 3
    assert m["structural/verify"] == pytest.approx(100.0)
    assert m["structural/query"] == pytest.approx(100 / 3)
    assert m["semantic/attr"] == pytest.approx(50.0)
    assert m["semantic/obj"] == pytest.approx(50.0)
    assert (m["steps/2"], m["steps/3"], m["steps/4"]) == pytest.approx((100.0, 50.0, 0.0))
    # a question without a prediction is left out (it has no features)
    assert gqa_metrics(t, predict("yes", None, "blue", "red", "no"), ANSWERS)["accuracy"] == pytest.approx(
        200 / 3
    )


def test_reasoning_steps_leave_out_exist_query_name_and_choose_name():
    def program(*ops):
        return [{"operation": o, "argument": a} for o, a in ops]

    assert reasoning_steps(program(("select", "cube"), ("filter color", "red"), ("exist", "?"))) == 2
    assert reasoning_steps(program(("select", "cube"), ("query", "name"))) == 1
    # "choose name" is an operation ("choose name: cup|plate"); "choose: name" is not left out
    assert reasoning_steps(program(("select", "table"), ("relate", "on"), ("choose name", "cup|plate"))) == 2
    assert reasoning_steps(program(("select", "cup"), ("choose", "name"))) == 2
    assert reasoning_steps(program(("select", "cube"), ("query", "color"))) == 2


def test_validity_and_plausibility_are_membership_in_the_choices_with_the_common_rule():
    valid = csr_pairs(
        [np.array([L["red"], L["blue"]]), np.array([L["red"], L["blue"]]), np.array([L["red"]])]
    )
    plausible = csr_pairs([np.array([L["red"]]), np.array([L["red"]]), np.array([L["red"]])])
    t = tables(
        [
            {"answer": "red", "structural": "query"},
            {"answer": "blue", "structural": "query"},
            # "Common" questions ("what do they have in common?") answer with one of color/material/shape
            {"answer": "color", "structural": "query", "detailed": "compareCommon"},
        ],
        valid=valid,
        plausible=plausible,
    )
    m = gqa_metrics(t, predict("blue", "yes", "color"), ANSWERS)
    assert m["validity"] == pytest.approx(200 / 3)  # blue valid, yes not, color by the rule
    assert m["plausibility"] == pytest.approx(100 / 3)  # blue not plausible, yes not, color by the rule


def test_consistency_is_the_accuracy_on_entailed_questions_of_those_answered_right():
    t = tables(
        [
            {"answer": "yes", "entailed": [1, 2]},  # right; entailed: 1 right, 2 wrong -> 0.5
            {"answer": "no"},  # right, entails nothing: not counted
            {"answer": "yes"},  # wrong
            {"answer": "no", "entailed": [0]},  # wrong: not counted
            {"answer": "yes", "entailed": [4, 1]},  # right; itself left out, 1 right -> 1.0
            {"answer": "yes", "entailed": [6]},  # right; its entailed question has no prediction
            {"answer": "no"},
        ]
    )
    m = gqa_metrics(t, predict("yes", "no", "no", "yes", "yes", "yes", None), ANSWERS)
    assert m["consistency"] == pytest.approx(75.0)


def test_distribution_is_the_weighted_chi_square_per_global_group_over_100():
    t = tables(
        [
            {"answer": "red", "group": "color"},
            {"answer": "red", "group": "color"},
            {"answer": "blue", "group": "color"},
            {"answer": "cube", "group": "shape"},
            {"answer": "yes", "group": ""},  # no global group: left out
        ]
    )
    m = gqa_metrics(t, predict("red", "blue", "blue", "cube", "no"), ANSWERS)
    # color: (1 - 2)^2 / 2 + (2 - 1)^2 / 1 = 1.5 over 3 questions; shape: 0 over 1
    assert m["distribution"] == pytest.approx((1.5 * 3 + 0.0 * 1) / 4 / 100)
