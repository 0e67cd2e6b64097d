"""CF-VQA (debias=cfvqa): its loss, gradients and counterfactual inference against values worked
out from the formula on one question with two answers, and the conflict with a question-only model.

z = (0, 2) main logits, y = (1, 0) soft targets. The question-only and vision-only branches are
fixed to q_pred = (1, -1) and v_pred = (0.5, 0) whatever their input (last layer's weights 0, bias
set), their output layers to the identity (q_out = q_pred, v_out = v_pred); the constant c is at
its initial value 0. s is the sigmoid.
"""

from __future__ import annotations

import math

import pytest
import torch

from butd.config.debias import DebiasConfig
from butd.config.model import ModelConfig
from butd.errors import ConfigError
from butd.training.debias import build_debias
from butd.training.validate import check_output_and_debias

Z = torch.tensor([[0.0, 2.0]])
Y = torch.tensor([[1.0, 0.0]])
Q_PRED = (1.0, -1.0)
V_PRED = (0.5, 0.0)


def s(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _cfvqa() -> torch.nn.Module:
    fn = build_debias(DebiasConfig(name="cfvqa"), num_hid=3, num_answers=2, v_dim=4)
    with torch.no_grad():
        for branch, pred in ((fn.q_branch, Q_PRED), (fn.v_branch, V_PRED)):
            branch[-1].weight.zero_()
            branch[-1].bias.copy_(torch.tensor(pred))
        for out in (fn.q_out, fn.v_out):
            out.weight.copy_(torch.eye(2))
            out.bias.zero_()
    return fn


def _expected_loss_and_grads() -> tuple[float, list[float], float]:
    """The loss, d loss / d z and d loss / d c, from the formula by hand."""
    fused = [z + q + v for z, q, v in zip((0.0, 2.0), Q_PRED, V_PRED, strict=True)]  # (1.5, 1)
    # cross-entropy over the answers, y = (1, 0) made a distribution: -log softmax(scores)_0, with
    # h_te = log s(fused) for the fused branch: softmax(h_te) = s(fused) / sum
    te = [s(x) for x in fused]
    p_te = [t / sum(te) for t in te]
    main = -math.log(p_te[0])
    question = math.log1p(math.exp(Q_PRED[1] - Q_PRED[0]))  # -log softmax((1, -1))_0
    vision = math.log1p(math.exp(V_PRED[1] - V_PRED[0]))
    # h_nde = log s(q_pred + 2c); at c = 0 its softmax is s(q_pred) / (s(1) + s(-1)) = s(q_pred)
    nde = [s(q) for q in Q_PRED]
    kl = -sum(p * math.log(n / sum(nde)) for p, n in zip(p_te, nde, strict=True))
    # only the fused term reaches z: (softmax(h_te) - y) * d log s(x) / dx = (p - y) s(-x)
    grad_z = [(p - y) * s(-x) for p, y, x in zip(p_te, (1.0, 0.0), fused, strict=True)]
    # d/dc of -sum_a p_a [log s(q_a + 2c) - log sum_b s(q_b + 2c)] at c = 0
    d_log_s = [2.0 * (1.0 - n) for n in nde]
    d_log_sum = sum(2.0 * n * (1.0 - n) for n in nde) / sum(nde)
    grad_c = -sum(p * (d - d_log_sum) for p, d in zip(p_te, d_log_s, strict=True))
    return main + question + vision + kl, grad_z, grad_c


def test_loss_and_gradients_follow_the_formula() -> None:
    fn = _cfvqa()
    assert fn.constant.item() == 0.0  # the authors' initial value
    z = Z.clone().requires_grad_(True)
    q_emb = torch.randn(1, 3, requires_grad=True)
    v_emb = torch.randn(1, 4, requires_grad=True)
    loss = fn(z, Y, q_emb=q_emb, v_emb=v_emb)
    expected, grad_z, grad_c = _expected_loss_and_grads()
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    dz, dq, dv, dc = torch.autograd.grad(loss, [z, q_emb, v_emb, fn.constant], allow_unused=True)
    assert dz[0].tolist() == pytest.approx(grad_z, abs=1e-6)
    assert dc.item() == pytest.approx(grad_c, abs=1e-6)
    # the branches read their inputs detached: no gradient to the question encoder or the image
    assert dq is None and dv is None


def test_only_the_constant_learns_from_the_kl_term() -> None:
    fn = _cfvqa()
    z = Z.clone().requires_grad_(True)
    q_emb, v_emb = torch.randn(1, 3), torch.randn(1, 4)
    loss = fn(z, Y, q_emb=q_emb, v_emb=v_emb)
    names = ["z", *dict(fn.named_parameters())]
    grads = dict(zip(names, torch.autograd.grad(loss, [z, *fn.parameters()]), strict=True))
    # with the KL term removed the loss is the three cross-entropies: same gradient to z, none to c
    te = torch.nn.functional.logsigmoid(z + torch.tensor([Q_PRED]) + torch.tensor([V_PRED]))
    (dz_ce,) = torch.autograd.grad(-te.log_softmax(dim=1)[0, 0], [z])
    assert torch.allclose(grads["z"], dz_ce, atol=1e-6)
    assert grads["constant"].abs().item() > 0


def test_inference_is_the_total_indirect_effect() -> None:
    fn = _cfvqa()
    q_emb, v_emb = torch.randn(2, 3), torch.randn(2, 4)
    z = torch.tensor([[0.0, 2.0], [3.0, -1.0]])
    tie = fn.answer_scores(z, q_emb=q_emb, v_emb=v_emb)
    # TIE = log s(z + q + v) - log s(q + 2c), c = 0
    for row in range(2):
        for a in range(2):
            zq = z[row, a].item() + Q_PRED[a] + V_PRED[a]
            expected = math.log(s(zq)) - math.log(s(Q_PRED[a]))
            assert tie[row, a].item() == pytest.approx(expected, abs=1e-6)
    # question 0: the fused model answers 0 (1.5 > 1); the TIE removes the question's pull to 0
    # (log s(1.5) - log s(1) = 0.112 against log s(1) - log s(-1) = 1): it answers 1
    assert tie[0].argmax().item() == 1
    # a learned c moves the counterfactual: c = 0.5 gives log s(q + 1)
    with torch.no_grad():
        fn.constant.fill_(0.5)
    tie = fn.answer_scores(z, q_emb=q_emb, v_emb=v_emb)
    assert tie[0, 0].item() == pytest.approx(math.log(s(1.5)) - math.log(s(2.0)), abs=1e-6)
    diag = fn.diagnostics(z, Y.expand(2, 2), q_emb=q_emb, v_emb=v_emb)
    assert diag["constant"].tolist() == [0.5, 0.5]
    assert diag["tie_changed"].tolist() == [1.0, 0.0]


def test_cfvqa_with_a_question_only_model_is_refused() -> None:
    with pytest.raises(ConfigError, match="debias=cfvqa with model=question_only"):
        check_output_and_debias(ModelConfig(name="question_only"), DebiasConfig(name="cfvqa"))
    check_output_and_debias(ModelConfig(name="butd"), DebiasConfig(name="cfvqa"))
