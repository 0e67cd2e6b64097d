"""Each debias loss and its gradient with respect to the main logits z, against the method's
formula evaluated independently here (NumPy, float64) on two questions with three answers whose
priors include exact 0 and exact 1, every learned parameter at its initial value.

Notation: s(x) = 1 / (1 + e^-x); B questions, A answers; BCE(z, t) = -t log s(z) - (1 - t) log s(-z).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from butd.config.debias import DEBIAS_METHODS, DebiasConfig
from butd.errors import ConfigError
from butd.training.debias import build_debias
from butd.training.metrics import vqa_bce_loss

Z = np.array([[0.7, -1.2, 2.0], [0.3, 0.0, -0.5]])
Y = np.array([[0.0, 1.0, 0.3], [0.0, 0.6, 1.0]])
#: exact 0 and exact 1, each where the target agrees with it ((0, 0), (0, 1): the answers a
#: bias product without smoothing never teaches) and where it does not ((1, 0), (1, 1))
PRIOR = np.array([[0.0, 1.0, 0.25], [1.0, 0.0, 0.5]])
NUM_HID, BATCH, ANSWERS = 4, 2, 3
H = np.linspace(-1.0, 1.0, BATCH * NUM_HID).reshape(BATCH, NUM_HID)  # joint representation
Q = np.linspace(0.5, -0.5, BATCH * NUM_HID).reshape(BATCH, NUM_HID)  # question embedding
#: the learned smoothing at its initial value w_s = -1
S0 = 1.0 / (1.0 + math.e)


def sig(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def bce(z: np.ndarray, t: np.ndarray) -> np.ndarray:
    return -t * np.log(sig(z)) - (1.0 - t) * np.log(sig(-z))


def pseudo(y: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return 2.0 * y * sig(-2.0 * y * bias)


def _run(name: str, *, mode: str = "tog", step: str | None = None):
    """The method's loss and dL/dz on the case, and the loss module (float64, initial parameters)."""
    torch.manual_seed(0)
    fn = build_debias(DebiasConfig(name=name, mode=mode), num_hid=NUM_HID, num_answers=ANSWERS).double()
    z = torch.tensor(Z, requires_grad=True)
    args = {"prior": torch.tensor(PRIOR), "q_emb": torch.tensor(Q)}
    y = torch.tensor(Y)
    if step == "branch":
        loss = fn.branch_step_loss(y, **args)
        return loss.item(), None, fn
    if step == "model":
        loss = fn.model_step_loss(z, y, **args)
    else:
        loss = fn(z, y, joint=torch.tensor(H), **args)
    loss.backward()
    return loss.item(), z.grad.numpy(), fn


def _check(name: str, loss: float, grad: np.ndarray, **kwargs) -> None:
    got_loss, got_grad, _ = _run(name, **kwargs)
    assert got_loss == pytest.approx(loss, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(got_grad, grad, rtol=1e-10, atol=1e-14)


def _branch(fn) -> tuple[np.ndarray, np.ndarray]:
    """q_pred = c_1(q) (Linear, ReLU, Linear, ReLU, Linear) and q_out = c_2(q_pred), by hand."""
    layers = [m for m in fn.branch.c_1 if isinstance(m, torch.nn.Linear)]
    x = Q
    for i, lin in enumerate(layers):
        x = x @ lin.weight.detach().numpy().T + lin.bias.detach().numpy()
        if i < len(layers) - 1:
            x = np.maximum(x, 0.0)
    c_2 = fn.branch.c_2
    return x, x @ c_2.weight.detach().numpy().T + c_2.bias.detach().numpy()


def test_none_is_the_reference_loss() -> None:
    _check("none", bce(Z, Y).sum() / BATCH, (sig(Z) - Y) / BATCH)
    z, y = torch.tensor(Z), torch.tensor(Y)
    assert torch.equal(build_debias(DebiasConfig(), num_hid=4, num_answers=3)(z, y), vqa_bce_loss(z, y))


def test_reweight() -> None:
    # sum(w * bce) / sum(w), w = 1 - b: no factor A
    w = 1.0 - PRIOR
    _check("reweight", (w * bce(Z, Y)).sum() / w.sum(), w * (sig(Z) - Y) / w.sum())


def _bias_shift(g: np.ndarray | float = 1.0) -> np.ndarray:
    """g (log(b + s) - log(1 - b + s)): the pair renormalised is s(z + shift) against s(-(z + shift))."""
    return g * (np.log(PRIOR + S0) - np.log(1.0 - PRIOR + S0))


def test_bias_product_with_the_learned_smoothing() -> None:
    # p1 = s(z)(b + s0) / (s(z)(b + s0) + s(-z)(1 - b + s0)) = s(z + shift)
    shifted = Z + _bias_shift()
    _check("bias_product", bce(shifted, Y).sum() / BATCH, (sig(shifted) - Y) / BATCH)
    _, _, fn = _run("bias_product")
    assert fn.smooth.item() == -1.0  # learned: a parameter of the loss


def test_bias_product_teaches_answers_whose_prior_is_0_or_1() -> None:
    _, grad, _ = _run("bias_product")
    # b = 0, y = 0 at z = 0.7 and b = 1, y = 1 at z = -1.2: a clamp at 1e-12 instead of the
    # smoothing gives them gradients of about 1e-12; the smoothing, of order 0.1
    assert grad[0, 0] > 0.1 and grad[0, 1] < -0.1


def _gate(fn) -> np.ndarray:
    w, c = fn.gate.weight.detach().numpy(), fn.gate.bias.detach().numpy()
    return np.log1p(np.exp(H @ w.T + c))  # softplus, [batch, 1]


def test_learned_mixin() -> None:
    _, _, fn = _run("learned_mixin")
    shifted = Z + _bias_shift(_gate(fn))
    _check("learned_mixin", bce(shifted, Y).sum() / BATCH, (sig(shifted) - Y) / BATCH)


def test_lmh_adds_the_entropy_of_the_scaled_bias() -> None:
    _, _, fn = _run("lmh")
    shift = _bias_shift(_gate(fn))
    q1 = sig(shift)  # softmax over the pair (g log(b + s0), g log(1 - b + s0))
    entropy = -(q1 * np.log(q1) + (1.0 - q1) * np.log(1.0 - q1))
    loss = bce(Z + shift, Y).sum() / BATCH + 0.36 * entropy.mean()
    _check("lmh", loss, (sig(Z + shift) - Y) / BATCH)


def test_learned_mixin_trains_its_gate_from_the_joint_representation() -> None:
    h = torch.randn(1, 3, requires_grad=True)
    torch.manual_seed(0)
    fn = build_debias(DebiasConfig(name="lmh"), num_hid=3, num_answers=2)
    fn(
        torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0]]), prior=torch.tensor([[0.0, 1.0]]), joint=h
    ).backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    assert fn.gate.weight.grad.abs().sum() > 0 and fn.smooth.grad.abs().sum() > 0


def test_rubi_masks_with_c1_and_fits_c2() -> None:
    _, _, fn = _run("rubi")
    q_pred, q_out = _branch(fn)
    mask = sig(q_pred)
    loss = bce(Z * mask, Y).sum() / BATCH + bce(q_out, Y).sum() / BATCH
    _check("rubi", loss, mask * (sig(Z * mask) - Y) / BATCH)
    widths = [(m.in_features, m.out_features) for m in fn.branch.c_1 if isinstance(m, torch.nn.Linear)]
    assert widths == [(NUM_HID, 1024), (1024, 1024), (1024, ANSWERS)]
    assert (fn.branch.c_2.in_features, fn.branch.c_2.out_features) == (ANSWERS, ANSWERS)


@pytest.mark.parametrize("name", ["rubi", "gge_q", "gge_dq"])
def test_the_question_only_branch_blocks_the_gradient_to_the_question_encoder(name) -> None:
    q = torch.randn(BATCH, NUM_HID, requires_grad=True)
    z = torch.tensor(Z, requires_grad=True)
    fn = build_debias(DebiasConfig(name=name), num_hid=NUM_HID, num_answers=ANSWERS).double()
    loss = fn(z, torch.tensor(Y), prior=torch.tensor(PRIOR), q_emb=q.double())
    grad_q, grad_z = torch.autograd.grad(loss, [q, z], allow_unused=True)
    assert grad_q is None  # the branch reads q detached
    assert grad_z.abs().sum() > 0
    branch = torch.autograd.grad(
        fn(z, torch.tensor(Y), prior=torch.tensor(PRIOR), q_emb=q.double()), [fn.branch.c_2.weight]
    )
    assert branch[0].abs().sum() > 0  # the branch itself learns


@pytest.mark.parametrize("name", ["gge", "gge_q", "gge_dq"])
def test_gge_pseudo_labels_stay_within_the_targets(name) -> None:
    """B >= 0 keeps 2 y s(-2 y B) in [0, y]: BCE against them is bounded below, even when the
    branch's logits are very negative (with B = q_out the labels would reach 2 y)."""
    torch.manual_seed(0)
    fn = build_debias(DebiasConfig(name=name), num_hid=NUM_HID, num_answers=ANSWERS).double()
    if name != "gge":
        with torch.no_grad():
            fn.branch.c_2.weight.zero_()
            fn.branch.c_2.bias.fill_(-50.0)
    y = torch.tensor(Y)
    z = torch.full((BATCH, ANSWERS), 40.0)  # far past any sensible logit
    loss = fn(z.double(), y, prior=torch.tensor(PRIOR), q_emb=torch.tensor(Q))
    assert loss.item() >= 0  # BCE against labels in [0, 1] is never negative


def test_gge_d_fits_the_pseudo_labels_of_the_prior() -> None:
    t = pseudo(Y, PRIOR)
    _check("gge", bce(Z, t).sum() / BATCH, (sig(Z) - t) / BATCH)


def test_gge_q_tog() -> None:
    # the branch fits y; z fits the pseudo-labels of the branch's probabilities s(q_out)
    _, _, fn = _run("gge_q")
    _, q_out = _branch(fn)
    t = pseudo(Y, sig(q_out))
    _check("gge_q", bce(Z, t).sum() / BATCH + bce(q_out, Y).sum() / BATCH, (sig(Z) - t) / BATCH)


def test_gge_dq_tog() -> None:
    # the branch fits the prior's pseudo-labels; z those of s(q_out) + b
    _, _, fn = _run("gge_dq")
    _, q_out = _branch(fn)
    t = pseudo(Y, sig(q_out) + PRIOR)
    loss = bce(Z, t).sum() / BATCH + bce(q_out, pseudo(Y, PRIOR)).sum() / BATCH
    _check("gge_dq", loss, (sig(Z) - t) / BATCH)


def test_gge_dq_iter_steps() -> None:
    # the branch step: q_out against the prior's pseudo-labels; the model step: z against those
    # of s(q_pred) + b, q_pred = c_1(q) (the authors' two-step code reads c_1's output there)
    _, _, fn = _run("gge_dq", mode="iter")
    q_pred, q_out = _branch(fn)
    branch, _, _ = _run("gge_dq", mode="iter", step="branch")
    assert branch == pytest.approx(bce(q_out, pseudo(Y, PRIOR)).sum() / BATCH, rel=1e-12)
    t = pseudo(Y, sig(q_pred) + PRIOR)
    _check("gge_dq", bce(Z, t).sum() / BATCH, (sig(Z) - t) / BATCH, mode="iter", step="model")


def test_gge_q_iter_steps() -> None:
    _, _, fn = _run("gge_q", mode="iter")
    _, q_out = _branch(fn)
    branch, _, _ = _run("gge_q", mode="iter", step="branch")
    assert branch == pytest.approx(bce(q_out, Y).sum() / BATCH, rel=1e-12)
    t = pseudo(Y, sig(q_out))
    _check("gge_q", bce(Z, t).sum() / BATCH, (sig(Z) - t) / BATCH, mode="iter", step="model")


def test_every_method_has_a_loss_and_a_config_file() -> None:
    from butd.config import CONF_DIR

    for name in DEBIAS_METHODS.names:
        build_debias(DebiasConfig(name=name), num_hid=3, num_answers=2, v_dim=4)
        assert (CONF_DIR / "debias" / f"{name}.yaml").is_file()
    with pytest.raises(ConfigError, match="debias.name='mixin' is invalid"):
        DebiasConfig(name="mixin")


def test_mode_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"debias.mode='both' is invalid; expected one of"):
        DebiasConfig(name="gge_dq", mode="both")
    with pytest.raises(ConfigError, match="debias.mode=iter with debias=lmh: only gge_q and gge_dq"):
        DebiasConfig(name="lmh", mode="iter")
