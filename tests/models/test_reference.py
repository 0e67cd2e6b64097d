"""Equivalence with the original implementation, via the golden files it produced.

``golden_dir`` comes from tests/conftest.py.
"""

from pathlib import Path
from typing import Any

import pytest
import torch

from butd.models import BUTDModel, from_reference
from butd.models.reference import _PREFIXES, _rename, to_reference
from butd.training.metrics import vqa_bce_loss

CASES = ["newatt", "baseline0"]
ATTENTION = {"newatt": "newatt", "baseline0": "concat"}


@pytest.fixture(scope="module", params=CASES)
def golden(request: pytest.FixtureRequest, golden_dir: Path) -> dict[str, Any]:
    data = torch.load(golden_dir / f"model_visible_{request.param}.pt")
    data["case"] = request.param
    return data


def _model(golden: dict[str, Any]) -> BUTDModel:
    model = from_reference(golden["state_dict"])
    model.eval()
    return model


def test_inferred_architecture(golden: dict[str, Any]) -> None:
    model = _model(golden)
    cfg = golden["config"]
    assert model.w_emb.ntoken == cfg["ntoken"]
    assert model.q_encoder.num_hid == cfg["num_hid"]
    expected = {"newatt": "ProjectionAttention", "concat": "ConcatAttention"}
    assert type(model.attention).__name__ == expected[ATTENTION[golden["case"]]]
    assert model.classifier.out.out_features == cfg["num_ans_candidates"]


def test_eval_logits_and_intermediates(golden: dict[str, Any]) -> None:
    model = _model(golden)
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str, use_input: bool = False):
        def hook(module, inputs, output):
            seen[name] = inputs[0] if use_input else output

        return hook

    model.w_emb.register_forward_hook(keep("w_emb"))
    model.q_encoder.register_forward_hook(keep("q_emb"))
    model.q_net.register_forward_hook(keep("q_repr"))
    model.v_net.register_forward_hook(keep("v_repr"))
    model.v_net.register_forward_hook(keep("v_emb", use_input=True))
    model.classifier.register_forward_hook(keep("joint_repr", use_input=True))
    with torch.no_grad():
        logits, att = model.forward_with_attention(golden["v"], golden["q"], golden["b"])
    seen["att"] = att
    torch.testing.assert_close(logits, golden["logits_eval"], atol=1e-5, rtol=0)
    for name, expected in golden["intermediates_eval"].items():
        torch.testing.assert_close(seen[name], expected, atol=1e-5, rtol=0, msg=name)


def _train_step(model: BUTDModel, optim: torch.optim.Optimizer, golden: dict[str, Any]):
    params = [p for p in model.parameters() if p.requires_grad]
    loss = vqa_bce_loss(model(golden["v"], golden["q"], golden["b"]), golden["target"])
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(params, 0.25)
    optim.step()
    optim.zero_grad()
    return loss.item(), norm.item()


def test_training_steps_match(golden: dict[str, Any]) -> None:
    model = _model(golden)  # kept in eval mode, as the golden run did
    optim = torch.optim.Adamax(model.parameters())
    loss, norm = _train_step(model, optim, golden)
    assert loss == pytest.approx(golden["loss"], abs=1e-5)
    assert norm == pytest.approx(golden["grad_norm_before_clip"], abs=1e-5)
    with torch.no_grad():
        after = model(golden["v"], golden["q"])
    torch.testing.assert_close(after, golden["logits_after_step"], atol=1e-4, rtol=0)
    params = to_reference(model)
    for key, expected in golden["state_dict_after_step"].items():
        torch.testing.assert_close(
            params[key], expected.reshape(params[key].shape), atol=1e-4, rtol=0, msg=key
        )
    losses = [loss] + [_train_step(model, optim, golden)[0] for _ in range(2)]
    assert losses == pytest.approx(golden["losses_3_steps"], abs=1e-5)
    with torch.no_grad():
        after3 = model(golden["v"], golden["q"])
    torch.testing.assert_close(after3, golden["logits_after_3_steps"], atol=1e-4, rtol=0)


def test_parameter_order_does_not_matter(golden: dict[str, Any]) -> None:
    """Adamax in the reference's registration order gives the same step as in ours."""
    ours, theirs = _model(golden), _model(golden)
    named = dict(theirs.named_parameters())
    in_ref_order = [named[_rename(k, _PREFIXES)] for k in golden["state_dict"]]
    assert [id(p) for p in in_ref_order] != [id(p) for p in theirs.parameters()]
    _train_step(ours, torch.optim.Adamax(ours.parameters()), golden)
    _train_step(theirs, torch.optim.Adamax(in_ref_order), golden)
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)


def test_round_trip_to_reference(golden: dict[str, Any]) -> None:
    exported = to_reference(_model(golden))
    assert set(exported) == set(golden["state_dict"])
    for key, value in golden["state_dict"].items():
        torch.testing.assert_close(exported[key], value)


def test_accepts_data_parallel_prefix_and_old_g_shape(golden: dict[str, Any]) -> None:
    old = {
        f"module.{k}": (v.reshape(1) if k.endswith("weight_g") else v)
        for k, v in golden["state_dict"].items()
    }
    assert any(v.shape == (1,) for k, v in old.items() if k.endswith("weight_g"))
    model = from_reference(old).eval()
    with torch.no_grad():
        logits = model(golden["v"], golden["q"])
    torch.testing.assert_close(logits, golden["logits_eval"], atol=1e-5, rtol=0)
    assert all(p.shape == () for n, p in model.named_parameters() if n.endswith("weight_g"))


def test_rejects_unknown_and_missing_keys(golden: dict[str, Any]) -> None:
    extra = dict(golden["state_dict"])
    extra["v_att.extra.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"v_att\.extra\.weight"):
        from_reference(extra)
    missing = dict(golden["state_dict"])
    del missing["q_net.main.0.bias"]
    with pytest.raises(ValueError, match=r"q_net\.main\.0\.bias"):
        from_reference(missing)
    with pytest.raises(ValueError, match="w_emb.emb.weight"):
        from_reference({})
