"""The reference loss and scores, against the values the original code produced."""

import math

import pytest
import torch

from butd.training.metrics import UpperBound, VQAScore, argmax_scores, vqa_bce_loss, vqa_softmax_loss


def _golden(golden_dir, name="model_visible_newatt.pt"):
    return torch.load(golden_dir / name)


def test_loss_matches_reference(golden_dir):
    for name in ("model_visible_newatt.pt", "model_visible_baseline0.pt"):
        g = _golden(golden_dir, name)
        loss = vqa_bce_loss(g["logits_eval"], g["target"])
        assert abs(loss.item() - g["loss"]) < 1e-6


def test_score_matches_reference_score_matrix(golden_dir):
    g = _golden(golden_dir)
    per_question = argmax_scores(g["logits_eval"], g["target"])
    assert torch.allclose(per_question, g["score_matrix"].sum(1))
    metric = VQAScore()
    metric.update(g["logits_eval"], g["target"])
    batch = g["target"].size(0)
    assert abs(metric.compute().item() - 100 * float(g["batch_score"]) / batch) < 1e-4
    assert float(g["batch_score"]) > 0  # the oracle was arranged to score something


def test_scores_accumulate_over_batches_in_percent():
    target = torch.tensor([[1.0, 0.0, 0.3], [0.0, 0.6, 0.0], [0.0, 0.0, 0.0]])
    logits = torch.tensor([[5.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    score, bound = VQAScore(), UpperBound()
    score.update(logits[:2], target[:2])
    score.update(logits[2:], target[2:])
    bound.update(target[:1])
    bound.update(target[1:])
    assert abs(score.compute().item() - 100 * 1.0 / 3) < 1e-4
    assert abs(bound.compute().item() - 100 * 1.6 / 3) < 1e-4


def test_softmax_loss_against_a_hand_worked_value():
    # question 1: softmax(0, ln 2, 0) = (1/4, 1/2, 1/4); scores (1, 0.3, 0) -> (1/1.3, 0.3/1.3, 0);
    # -(1/1.3) ln(1/4) - (0.3/1.3) ln(1/2) = ln 2 * 2.3 / 1.3. Question 2 has no scoring answer: 0.
    logits = torch.tensor([[0.0, math.log(2.0), 0.0], [5.0, -1.0, 2.0]], requires_grad=True)
    target = torch.tensor([[1.0, 0.3, 0.0], [0.0, 0.0, 0.0]])
    loss = vqa_softmax_loss(logits, target)
    assert loss.item() == pytest.approx(math.log(2.0) * 2.3 / 1.3 / 2, rel=1e-6)
    loss.backward()
    # the mean over both questions: (softmax - distribution) / 2, and nothing from question 2
    expected = torch.tensor([[0.25 - 1 / 1.3, 0.5 - 0.3 / 1.3, 0.25], [0.0, 0.0, 0.0]]) / 2
    torch.testing.assert_close(logits.grad, expected)


def test_softmax_loss_is_computed_in_float32_from_bf16_logits():
    logits = torch.tensor([[0.0, math.log(2.0), 0.0]])
    target = torch.tensor([[1.0, 0.3, 0.0]])
    loss = vqa_softmax_loss(logits.bfloat16(), target)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(vqa_softmax_loss(logits, target).item(), rel=1e-2)
