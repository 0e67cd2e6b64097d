"""`model.use_spatial`: the box geometry b appended to each object's feature."""

import itertools

import pytest
import torch

from butd.models import (
    ACTIVATIONS,
    ATTENTIONS,
    BUTDModel,
    ModelConfig,
    QuestionOnlyModel,
    build_model,
    count_parameters,
    from_reference,
    to_reference,
)
from butd.models.butd import SPATIAL_DIM

NTOKEN, V_DIM, NUM_ANS, K, T, HID = 30, 12, 7, 5, 6, 16


def _model(*, use_spatial: bool, attention: str = "newatt", activation: str = "relu") -> BUTDModel:
    torch.manual_seed(0)
    cfg = ModelConfig(
        attention=attention, activation=activation, num_hid=HID, emb_dim=8, use_spatial=use_spatial
    )
    model = build_model(cfg, ntoken=NTOKEN, v_dim=V_DIM, num_answers=NUM_ANS)
    assert isinstance(model, BUTDModel)
    return model


def _shapes(model: torch.nn.Module) -> dict[str, torch.Size]:
    return {key: value.shape for key, value in model.state_dict().items()}


def _inputs(batch: int = 3, k: int = K) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    v = torch.rand(batch, k, V_DIM, generator=g)
    q = torch.randint(0, NTOKEN + 1, (batch, T), generator=g)
    b = torch.rand(batch, k, SPATIAL_DIM, generator=g)
    return v, q, b


@pytest.mark.parametrize(
    ("attention", "activation"), list(itertools.product(sorted(ATTENTIONS.names), ACTIVATIONS.names))
)
def test_spatial_adds_six_input_columns_to_the_attention_and_v_net_only(attention, activation):
    plain, spatial = (
        _shapes(_model(use_spatial=s, attention=attention, activation=activation)) for s in (False, True)
    )
    assert plain.keys() == spatial.keys()
    grown = sorted(k for k in plain if plain[k] != spatial[k])
    first = "attention.v_proj" if attention == "newatt" else "attention.nonlinear"
    layers = ["linear", "gate"] if activation != "relu" else ["linear"]
    assert grown == sorted(f"{m}.{layer}.weight_v" for m in (first, "v_net") for layer in layers)
    for key in grown:
        rows, cols = plain[key]
        assert spatial[key] == (rows, cols + SPATIAL_DIM)


@pytest.mark.parametrize(("attention", "expected"), [("newatt", 24_863_465), ("concat", 24_862_440)])
def test_parameter_count_at_vqa_v2_size(attention: str, expected: int) -> None:
    """Two layers (attention input, v_net) gain 6 x 1024 weights each over the reference's count."""
    cfg = ModelConfig(attention=attention, use_spatial=True)
    model = build_model(cfg, ntoken=19901, v_dim=2048, num_answers=3129)
    assert count_parameters(model) == expected


@pytest.mark.parametrize("attention", sorted(ATTENTIONS.names))
def test_output_depends_on_b_only_with_use_spatial(attention: str) -> None:
    v, q, b = _inputs()
    b2 = b.clone()
    b2[0, 2] = torch.tensor([0.1, 0.2, 0.9, 0.7, 0.8, 0.5])
    with torch.no_grad():
        spatial = _model(use_spatial=True, attention=attention).eval()
        logits, att = spatial.forward_with_attention(v, q, b)
        logits2, att2 = spatial.forward_with_attention(v, q, b2)
        assert not torch.allclose(logits[0], logits2[0])
        assert not torch.allclose(att[0], att2[0])  # the attention sees the geometry
        torch.testing.assert_close(logits[1:], logits2[1:])  # other questions are untouched

        plain = _model(use_spatial=False, attention=attention).eval()
        assert torch.equal(plain(v, q, b), plain(v, q, b2))
        assert torch.equal(plain(v, q, b), plain(v, q))


@pytest.mark.parametrize("attention", sorted(ATTENTIONS.names))
def test_padded_boxes_do_not_influence_the_output(attention: str) -> None:
    model = _model(use_spatial=True, attention=attention).eval()
    v, q, b = _inputs(k=8)
    mask = torch.ones(3, 8, dtype=torch.bool)
    mask[:, 5:] = False
    with torch.no_grad():
        expected = model(v[:, :5], q, b[:, :5])
        torch.testing.assert_close(model(v, q, b, mask), expected)
        junk_v, junk_b = v.clone(), b.clone()
        junk_v[:, 5:] = 1e4 * torch.randn(3, 3, V_DIM)
        junk_b[:, 5:] = -1e4
        torch.testing.assert_close(model(junk_v, q, junk_b, mask), expected)
        junk_v[:, 5:, 0] = float("nan")
        junk_b[:, 5:, 1] = float("inf")
        logits, att = model.forward_with_attention(junk_v, q, junk_b, mask)
        torch.testing.assert_close(logits, expected)
        assert (att[:, 5:] == 0).all()
    # gradients stay finite with NaN in the padding
    model.train()
    model(junk_v, q, junk_b, mask).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_training_step_runs_and_b_gets_a_gradient_path() -> None:
    model = _model(use_spatial=True).train()
    v, q, b = _inputs()
    optim = torch.optim.Adamax(model.parameters(), lr=2e-3)
    loss = model(v, q, b).sigmoid().mean()
    loss.backward()
    grad = model.v_net.linear.weight_v.grad
    assert grad is not None and grad[:, V_DIM:].abs().sum() > 0  # the geometry columns learn
    before = model.v_net.linear.weight_v.detach().clone()
    optim.step()
    assert not torch.equal(before, model.v_net.linear.weight_v)


def test_b_is_required_and_checked_with_use_spatial() -> None:
    model = _model(use_spatial=True).eval()
    v, q, b = _inputs()
    with pytest.raises(ValueError, match="use_spatial=true.*b=None"):
        model(v, q)
    with pytest.raises(ValueError, match=r"expected \[3, 5, 6\]"):
        model(v, q, b[:, :4])
    with pytest.raises(ValueError, match=r"expected \[3, 5, 6\]"):
        model(v, q, b[..., :4])
    # half-precision geometry is cast to the features' dtype
    torch.testing.assert_close(model(v, q, b.half()), model(v, q, b.half().float()))


def test_question_only_ignores_use_spatial() -> None:
    cfgs = [ModelConfig(name="question_only", num_hid=HID, emb_dim=8, use_spatial=s) for s in (False, True)]
    models = [build_model(c, ntoken=NTOKEN, v_dim=V_DIM, num_answers=NUM_ANS) for c in cfgs]
    assert all(isinstance(m, QuestionOnlyModel) for m in models)
    assert count_parameters(models[0]) == count_parameters(models[1])
    _, q, _ = _inputs()
    with torch.no_grad():
        models[1].eval()
        torch.testing.assert_close(models[1](None, q), models[1](None, q, None))


def test_use_spatial_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="model.use_spatial='maybe' is invalid"):
        ModelConfig.from_dict({"use_spatial": "maybe"})
    with pytest.raises(ValueError, match="model.use_spatial=1 is invalid; expected true or false"):
        ModelConfig(use_spatial=1)  # type: ignore[arg-type]
    assert ModelConfig.from_dict({"use_spatial": True}).use_spatial is True
    assert ModelConfig().use_spatial is False


def test_the_reference_bridge_refuses_spatial_models() -> None:
    with pytest.raises(ValueError, match="use_spatial model has no counterpart in the reference"):
        to_reference(_model(use_spatial=True))
    # a plain model round-trips, and what comes back from the reference layout is never spatial
    plain = _model(use_spatial=False)
    back = from_reference(to_reference(plain))
    assert back.use_spatial is False
    for key, value in plain.state_dict().items():
        assert torch.equal(back.state_dict()[key], value)
