"""The diagnostics: each method's named per-question values, their means per answer type, and
every method's prior-answer shares, worked out by hand on small cases."""

from __future__ import annotations

import math

import pytest
import torch

from butd.config.debias import DebiasConfig
from butd.data.batch import VQABatch
from butd.training.debias import build_debias
from butd.training.metrics import typed_mean_metrics
from butd.training.module import VQAModule

OPTIMIZER = {"_target_": "torch.optim.Adamax", "_partial_": True, "lr": 2e-3}
pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log")


def test_typed_means_average_per_answer_type() -> None:
    metrics = typed_mean_metrics(scale=100.0)
    # answer types: yes/no 0, number 1, other 2; -1 (none) counts overall only
    value = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    atype = torch.tensor([0, 0, 1, 2, -1])
    for m in metrics.values():
        m.update(value, atype)
    got = {k: m.compute().item() for k, m in metrics.items()}
    assert got == pytest.approx({"overall": 60.0, "yes_no": 50.0, "number": 100.0, "other": 100.0})


def test_method_diagnostics_at_their_initial_values() -> None:
    y = torch.tensor([[1.0, 0.0], [0.0, 0.6]])
    b = torch.tensor([[0.5, 0.25], [0.0, 0.0]])
    z, h = torch.zeros(2, 2), torch.zeros(2, 3)
    for name in ("learned_mixin", "lmh"):
        fn = build_debias(DebiasConfig(name=name), num_hid=3, num_answers=2)
        diag = fn.diagnostics(z, y, prior=b, joint=h)
        assert set(diag) == set(fn.diagnostic_names) == {"gate", "smooth"}
        # h = 0: g = softplus(c), the gate's bias; s(w_s) = s(-1) at init
        assert diag["gate"].tolist() == pytest.approx([math.log1p(math.exp(fn.gate.bias.item()))] * 2)
        assert diag["smooth"].tolist() == pytest.approx([0.268941] * 2, abs=1e-6)
    # GGE-D: 2 s(-2 y b) at the top-scored answer: 2 s(-1) = 0.537883; a prior of 0 leaves it at 1
    fn = build_debias(DebiasConfig(name="gge"), num_hid=3, num_answers=2)
    assert fn.diagnostics(z, y, prior=b)["pseudo_weight"].tolist() == pytest.approx([0.537883, 1.0], abs=1e-6)
    # RUBi: the mean over the answers of s(q_pred)
    fn = build_debias(DebiasConfig(name="rubi"), num_hid=3, num_answers=2)
    q = torch.randn(2, 3)
    mask = fn.diagnostics(z, y, q_emb=q)["mask"]
    assert torch.allclose(mask, torch.sigmoid(fn.branch.c_1(q)).mean(1))
    # GGE-Q and GGE-DQ: GGE-D's weight with the bias the main model learns against, s(q_out) (+ b)
    for name, extra in (("gge_q", 0.0), ("gge_dq", b)):
        fn = build_debias(DebiasConfig(name=name), num_hid=3, num_answers=2)
        bias = torch.sigmoid(fn.branch.c_2(fn.branch.c_1(q))) + extra
        top = y.argmax(1, keepdim=True)
        want = 2 * torch.sigmoid(-2 * y.gather(1, top) * bias.gather(1, top)).squeeze(1)
        assert torch.allclose(fn.diagnostics(z, y, prior=b, q_emb=q)["pseudo_weight"], want)
    assert build_debias(DebiasConfig(), num_hid=3, num_answers=2).diagnostics(z, y) == {}


def _module(debias: str) -> VQAModule:
    torch.manual_seed(0)
    return VQAModule(
        model={"num_hid": 16, "emb_dim": 8},
        ntoken=25,
        v_dim=10,
        num_answers=3,
        optimizer=OPTIMIZER,
        debias={"name": debias},
    )


def test_prior_shares_count_the_answers_the_question_type_gives() -> None:
    module = _module("none")
    # type 0's most frequent answer is 1, type 1's is 2 (answer 0 never seen with it)
    module.set_prior(torch.tensor([[0.2, 0.7, 0.1], [0.0, 0.4, 0.6]]))
    assert module.qtype_top.tolist() == [1, 2, -1]  # the unseen type's empty row has none
    scores = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    batch = VQABatch(
        v=torch.zeros(4, 1, 10),
        b=torch.zeros(4, 1, 6),
        q=torch.zeros(4, 5, dtype=torch.long),
        question_id=torch.arange(4),
        qtype=torch.tensor([0, 1, 1, 2]),
        answer_type=torch.tensor([0, 0, 1, 2]),
        target=torch.zeros(4, 3),
    )
    names = module._update_diagnostics("val", {"logits": scores}, scores, batch)
    assert names == ["prior_top", "prior_support"]
    got = {(name, key): m.compute().item() for name in names for key, m in module.val_diag[name].items()}
    # answers 1, 1, 0, 0: the top prior answer for question 0 only; one the type has for 0 and 1
    assert got[("prior_top", "overall")] == pytest.approx(25.0)
    assert got[("prior_top", "yes_no")] == pytest.approx(50.0)
    assert got[("prior_support", "overall")] == pytest.approx(50.0)
    assert got[("prior_support", "yes_no")] == pytest.approx(100.0)
    assert got[("prior_support", "number")] == pytest.approx(0.0)


def test_cfvqa_answers_ignore_padded_boxes() -> None:
    module = _module("cfvqa").eval()
    g = torch.Generator().manual_seed(1)
    v, b = torch.rand(2, 4, 10, generator=g), torch.rand(2, 4, 6, generator=g)
    q = torch.randint(0, 25, (2, 5), generator=g)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    padded = v.clone()
    padded[1, 2:] = 1e3
    with torch.no_grad():
        scores = module.answer_scores(padded, q, b, mask)
        alone = module.answer_scores(v[1:, :2], q[1:], b[1:, :2])
        logits = module(v, q, b, mask)
    assert torch.allclose(scores[1:], alone, atol=1e-5)
    assert not torch.allclose(scores, logits)  # the TIE, not the main logits
