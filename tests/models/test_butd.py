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
)

NTOKEN, V_DIM, NUM_ANS, K, T = 30, 12, 7, 5, 6


def _inputs(batch: int = 3, k: int = K) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    v = torch.rand(batch, k, V_DIM, generator=g)
    q = torch.randint(0, NTOKEN + 1, (batch, T), generator=g)
    return v, q


@pytest.mark.parametrize(
    ("attention", "activation"), list(itertools.product(sorted(ATTENTIONS.names), ACTIVATIONS.names))
)
def test_shapes(attention: str, activation: str) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(attention=attention, activation=activation, num_hid=16, emb_dim=8)
    model = build_model(cfg, ntoken=NTOKEN, v_dim=V_DIM, num_answers=NUM_ANS)
    assert isinstance(model, BUTDModel)
    v, q = _inputs()
    logits, att = model.forward_with_attention(v, q)
    assert logits.shape == (3, NUM_ANS)
    assert att.shape == (3, K, 1)
    model.eval()
    mask = torch.ones(3, K, dtype=torch.bool)
    mask[:, 3:] = False
    with torch.no_grad():
        masked = model(v, q, v_mask=mask)
        # Masked objects must not influence the answer.
        v2 = v.clone()
        v2[:, 3:] = 100.0
        torch.testing.assert_close(model(v2, q, v_mask=mask), masked)
        torch.testing.assert_close(model(v[:, :3], q), masked)


def test_question_only_ignores_image() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(name="question_only", num_hid=16, emb_dim=8)
    model = build_model(cfg, ntoken=NTOKEN, v_dim=V_DIM, num_answers=NUM_ANS).eval()
    assert isinstance(model, QuestionOnlyModel)
    v, q = _inputs()
    with torch.no_grad():
        out = model(v, q)
        assert out.shape == (3, NUM_ANS)
        torch.testing.assert_close(model(torch.randn(3, 9, V_DIM), q), out)
        torch.testing.assert_close(model(None, q), out)


@pytest.mark.parametrize(("attention", "expected"), [("newatt", 24_851_177), ("concat", 24_850_152)])
def test_parameter_count_at_vqa_v2_size(attention: str, expected: int) -> None:
    cfg = ModelConfig(attention=attention)
    model = build_model(cfg, ntoken=19901, v_dim=2048, num_answers=3129)
    assert count_parameters(model) == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "mlp"),
        ("attention", "bilinear"),
        ("activation", "tanh"),
        ("num_hid", 0),
        ("emb_dim", -1),
        ("classifier_hid_mult", 0),
        ("att_dropout", 1.0),
        ("classifier_dropout", -0.1),
        ("emb_dropout", 1.5),
    ],
)
def test_config_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"model.{field}="):
        ModelConfig(**{field: value})
    with pytest.raises(ValueError, match=f"model.{field}="):
        ModelConfig.from_dict({field: value})


def test_config_from_dict_rejects_unknown_keys() -> None:
    assert ModelConfig.from_dict({"num_hid": 8}) == ModelConfig(num_hid=8)
    with pytest.raises(ValueError, match=r"unknown model config key 'num_hidden'; valid keys: \[.*'num_hid'"):
        ModelConfig.from_dict({"num_hidden": 8})
    with pytest.raises(ValueError, match="model.num_hid='wide' is invalid"):
        ModelConfig.from_dict({"num_hid": "wide"})


@pytest.mark.parametrize("attention", sorted(ATTENTIONS.names))
def test_non_finite_padding_reaches_neither_output_nor_gradients(attention: str) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(attention=attention, num_hid=16, emb_dim=8)
    model = build_model(cfg, ntoken=NTOKEN, v_dim=V_DIM, num_answers=NUM_ANS).eval()
    v, q = _inputs()
    mask = torch.ones(3, K, dtype=torch.bool)
    mask[0, 2:] = False
    mask[2, 4:] = False
    junk = v.clone()
    junk[~mask] = float("nan")
    junk[0, 3, 1] = float("inf")
    with torch.no_grad():
        logits = model(junk, q, v_mask=mask)
        for i, n in enumerate(mask.sum(1).tolist()):
            torch.testing.assert_close(logits[i : i + 1], model(v[i : i + 1, :n], q[i : i + 1]))
    model.train()
    model(junk, q, v_mask=mask).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
