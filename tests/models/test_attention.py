import pytest
import torch

from butd.models import ACTIVATIONS, ATTENTIONS, build_attention


@pytest.mark.parametrize("name", sorted(ATTENTIONS.names))
@pytest.mark.parametrize("activation", ACTIVATIONS.names)
@pytest.mark.parametrize("k", [1, 7, 36])
def test_weights_shape_and_sum(name: str, activation: str, k: int) -> None:
    torch.manual_seed(0)
    att = build_attention(name, 12, 8, 16, activation=activation).eval()
    w = att(torch.randn(3, k, 12), torch.randn(3, 8))
    assert w.shape == (3, k, 1)
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(1), torch.ones(3, 1))


@pytest.mark.parametrize("name", sorted(ATTENTIONS.names))
def test_masked_objects_get_zero_weight(name: str) -> None:
    torch.manual_seed(1)
    att = build_attention(name, 12, 8, 16).eval()
    v, q = torch.randn(3, 10, 12), torch.randn(3, 8)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[0, 4:] = False
    mask[1, :1] = False
    mask[2, :] = False  # every object masked: zeros, never NaN
    w = att(v, q, mask)
    assert torch.isfinite(w).all()
    assert (w[~mask] == 0).all()
    torch.testing.assert_close(w[:2].sum(1), torch.ones(2, 1))
    assert (w[2] == 0).all()
    # Masked rows equal the softmax over the kept objects alone.
    torch.testing.assert_close(w[0, :4], att(v[:1, :4], q[:1])[0])
    # Gradients stay finite through the masking.
    v.requires_grad_(True)
    att(v, q, mask).sum().backward()
    assert torch.isfinite(v.grad).all()


def test_unknown_attention_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="newatt"):
        build_attention("bilinear", 4, 4, 4)
