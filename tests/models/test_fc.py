import pytest
import torch
from torch import nn

from butd.models import ACTIVATIONS
from butd.models.fc import FCLayer, WeightNormLinear


def test_weight_norm_formula_uses_one_frobenius_norm() -> None:
    torch.manual_seed(0)
    layer = WeightNormLinear(5, 3)
    assert layer.weight_v.shape == (3, 5)
    assert layer.weight_g.shape == ()
    assert layer.bias.shape == (3,)
    with torch.no_grad():
        layer.weight_g.fill_(2.5)
    v = layer.weight_v.detach()
    expected_w = 2.5 * v / torch.linalg.matrix_norm(v, ord="fro")
    torch.testing.assert_close(layer.weight, expected_w)
    x = torch.randn(4, 7, 5)
    torch.testing.assert_close(layer(x), x @ expected_w.T + layer.bias.detach())


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_weight_norm_matches_torch_weight_norm_dim_none() -> None:
    torch.manual_seed(1)
    lin = nn.utils.weight_norm(nn.Linear(6, 4), dim=None)
    ours = WeightNormLinear(6, 4)
    with torch.no_grad():
        ours.weight_v.copy_(lin.weight_v)
        ours.weight_g.copy_(lin.weight_g.reshape(()))
        ours.bias.copy_(lin.bias)
    x = torch.randn(3, 6)
    torch.testing.assert_close(ours(x), lin(x))


def test_init_starts_as_plain_linear() -> None:
    torch.manual_seed(2)
    layer = WeightNormLinear(8, 2)
    torch.testing.assert_close(layer.weight_g, layer.weight_v.norm())
    torch.testing.assert_close(layer.weight, layer.weight_v)
    bound = 1 / 8**0.5
    assert layer.bias.abs().max() <= bound
    assert layer.weight_v.abs().max() <= bound
    assert WeightNormLinear(8, 2, bias=False).bias is None


@pytest.mark.parametrize("activation", ACTIVATIONS.names)
def test_fc_layer_activations(activation: str) -> None:
    torch.manual_seed(3)
    fc = FCLayer(5, 4, activation=activation)
    x = torch.randn(2, 3, 5)
    y = fc(x)
    assert y.shape == (2, 3, 4)
    a = fc.linear(x)
    if activation == "relu":
        assert fc.gate is None
        expected = torch.relu(a)
    else:
        gate = torch.sigmoid(fc.gate(x))
        expected = (torch.tanh(a) if activation == "gated_tanh" else a) * gate
    torch.testing.assert_close(y, expected)
    n_linear = 5 * 4 + 4 + 1
    assert sum(p.numel() for p in fc.parameters()) == n_linear * (1 if activation == "relu" else 2)


def test_fc_layer_rejects_unknown_activation() -> None:
    with pytest.raises(ValueError, match="gated_tanh"):
        FCLayer(2, 2, activation="tanh")
