"""The debias losses against values worked out by hand on one question with two answers.

z = (0, 2) or (1, 2) logits, y = (1, 0) soft targets, b = (0.5, 0.25) the question type's prior.
s is the sigmoid: s(2) = 0.880797, s(-2) = 0.119203, s(1) = 0.731059, s(-1) = 0.268941.
"""

from __future__ import annotations

import math

import pytest
import torch

from butd.config.debias import DEBIAS_METHODS, DebiasConfig
from butd.errors import ConfigError
from butd.training.debias import build_debias
from butd.training.metrics import vqa_bce_loss

Z = torch.tensor([[0.0, 2.0]])
Y = torch.tensor([[1.0, 0.0]])
B = torch.tensor([[0.5, 0.25]])
LN2 = math.log(2.0)
#: -log s(-2) = log(1 + e^2): the loss of answer 1 (y = 0) under plain BCE
BCE_1 = math.log(1.0 + math.e**2)  # 2.126928


def _loss(name: str, z: torch.Tensor = Z, **kwargs) -> torch.Tensor:
    fn = build_debias(DebiasConfig(name=name), num_hid=3, num_answers=2)
    return fn(z, Y, prior=B, **kwargs)


def test_none_is_the_reference_loss() -> None:
    # per question, a sum over answers: log 2 + log(1 + e^2)
    assert _loss("none").item() == pytest.approx(LN2 + BCE_1, abs=1e-6)
    assert torch.equal(_loss("none"), vqa_bce_loss(Z, Y))


def test_reweight() -> None:
    # weights 1 - b = (0.5, 0.75), sum 1.25; times 2 answers for the reference scale
    expected = (0.5 * LN2 + 0.75 * BCE_1) / 1.25 * 2  # 3.106832
    assert _loss("reweight").item() == pytest.approx(expected, abs=1e-6)
    fn = build_debias(DebiasConfig(name="reweight"), num_hid=3, num_answers=2)
    assert fn(Z, Y, prior=torch.zeros(1, 2)).item() == pytest.approx(vqa_bce_loss(Z, Y).item(), abs=1e-6)


def test_bias_product() -> None:
    # answer 0: s(0) 0.5 vs s(0) 0.5 -> p1 = 0.5; answer 1 (y = 0): p0 = s(-2) 0.75 / (s(2) 0.25 + s(-2) 0.75)
    p0 = 0.119203 * 0.75 / (0.880797 * 0.25 + 0.119203 * 0.75)  # 0.288765
    assert _loss("bias_product").item() == pytest.approx(LN2 - math.log(p0), abs=1e-5)
    # a prior of 0.5 cancels: the reference loss
    fn = build_debias(DebiasConfig(name="bias_product"), num_hid=3, num_answers=2)
    assert fn(Z, Y, prior=torch.full((1, 2), 0.5)).item() == pytest.approx(LN2 + BCE_1, abs=1e-5)


def _mixin(name: str, gate: float) -> torch.nn.Module:
    """Gate weights 0 and bias c with softplus(c) = gate; smoothing s(-1) = 0.268941 (the default init)."""
    fn = build_debias(DebiasConfig(name=name), num_hid=3, num_answers=2)
    with torch.no_grad():
        fn.gate.weight.zero_()
        fn.gate.bias.fill_(math.log(math.exp(gate) - 1.0))
    return fn


def test_learned_mixin_scales_and_smooths_the_prior() -> None:
    h = torch.ones(1, 3)
    s = 0.268941
    # g = 1: answer 1's bias pair is (0.25 + s, 0.75 + s)
    p0 = 0.119203 * (0.75 + s) / (0.880797 * (0.25 + s) + 0.119203 * (0.75 + s))  # 0.209940
    assert _mixin("learned_mixin", 1.0)(Z, Y, prior=B, joint=h).item() == pytest.approx(
        LN2 - math.log(p0), abs=1e-5
    )
    # g = 2: the bias pair is squared
    p0 = 0.119203 * (0.75 + s) ** 2 / (0.880797 * (0.25 + s) ** 2 + 0.119203 * (0.75 + s) ** 2)
    assert _mixin("learned_mixin", 2.0)(Z, Y, prior=B, joint=h).item() == pytest.approx(
        LN2 - math.log(p0), abs=1e-5
    )


def test_lmh_adds_the_entropy_of_the_scaled_bias() -> None:
    h = torch.ones(1, 3)
    s = 0.268941
    p0 = 0.119203 * (0.75 + s) / (0.880797 * (0.25 + s) + 0.119203 * (0.75 + s))
    # entropies of softmax(log B): answer 0 uniform (log 2); answer 1 (0.25 + s, 0.75 + s) normalised
    q1 = (0.25 + s) / (1.0 + 2 * s)
    entropy_1 = -(q1 * math.log(q1) + (1 - q1) * math.log(1 - q1))  # 0.639322
    expected = LN2 - math.log(p0) + 0.36 * (LN2 + entropy_1) / 2
    assert _mixin("lmh", 1.0)(Z, Y, prior=B, joint=h).item() == pytest.approx(expected, abs=1e-5)


def test_learned_mixin_trains_its_gate_from_the_joint_representation() -> None:
    h = torch.randn(1, 3, requires_grad=True)
    torch.manual_seed(0)
    fn = build_debias(DebiasConfig(name="lmh"), num_hid=3, num_answers=2)
    fn(Z, Y, prior=B, joint=h).backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    assert fn.gate.weight.grad.abs().sum() > 0 and fn.smooth.grad.abs().sum() > 0


def _rubi() -> torch.nn.Module:
    """A question-only branch whose logits are (0, log 3) whatever the question: s = (0.5, 0.75)."""
    fn = build_debias(DebiasConfig(name="rubi"), num_hid=3, num_answers=2)
    with torch.no_grad():
        fn.question_only[2].weight.zero_()
        fn.question_only[2].bias.copy_(torch.tensor([0.0, math.log(3.0)]))
    return fn


def test_rubi_masks_the_logits_and_adds_the_question_only_loss() -> None:
    q = torch.randn(1, 3)
    # masked logits (0 * 0.5, 2 * 0.75) = (0, 1.5); question-only logits (0, log 3)
    masked = LN2 + math.log(1.0 + math.exp(1.5))  # 2.394560
    question_only = LN2 + math.log(4.0)  # 2.079442
    assert _rubi()(Z, Y, q_emb=q).item() == pytest.approx(masked + question_only, abs=1e-5)


def test_rubi_blocks_the_gradient_to_the_question_encoder() -> None:
    q = torch.randn(1, 3, requires_grad=True)
    z = Z.clone().requires_grad_(True)
    fn = build_debias(DebiasConfig(name="rubi"), num_hid=3, num_answers=2)
    loss = fn(z, Y, q_emb=q)
    grad_q, grad_z = torch.autograd.grad(loss, [q, z], allow_unused=True)
    assert grad_q is None  # the question-only branch reads q detached
    assert grad_z.abs().sum() > 0
    branch = torch.autograd.grad(fn(z, Y, q_emb=q), list(fn.parameters()))
    assert branch[-1].abs().sum() > 0  # the branch itself learns


def test_gge_fits_the_pseudo_labels() -> None:
    z = torch.tensor([[1.0, 2.0]])
    # pseudo-labels 2 y s(-2 y b): answer 0: 2 s(-1) = 0.537883; answer 1: 0
    t = 2 * 0.268941
    # BCE(1, t) = t (-log s(1)) + (1 - t)(-log s(-1)) = 1.313262 - t
    expected = (1.313262 - t) + BCE_1
    assert _loss("gge", z=z).item() == pytest.approx(expected, abs=1e-5)


def test_every_method_has_a_loss_and_a_config_file() -> None:
    from butd.config import CONF_DIR

    for name in DEBIAS_METHODS:
        build_debias(DebiasConfig(name=name), num_hid=3, num_answers=2, v_dim=4)
        assert (CONF_DIR / "debias" / f"{name}.yaml").is_file()
    with pytest.raises(ConfigError, match="debias.name='mixin' is invalid"):
        DebiasConfig(name="mixin")
