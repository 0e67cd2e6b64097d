"""Weight-normalised linear layers and the gated activations of the BUTD paper."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from butd.config.model import ACTIVATIONS  # the names the config accepts, and whether each is gated


class WeightNormLinear(nn.Module):
    """Linear layer with ONE weight-norm scale for the whole matrix.

    The effective weight is ``weight_g * weight_v / ||weight_v||_F`` (what
    ``torch.nn.utils.weight_norm(..., dim=None)`` computes), so a checkpoint of the
    reference loads into it parameter for parameter.

    x: [..., in_features] -> [..., out_features]
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight_v = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_g = nn.Parameter(torch.empty(()))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's default init for v and bias; g = ||v|| so the layer starts as that Linear."""
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))
        with torch.no_grad():
            self.weight_g.copy_(self.weight_v.norm())
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def weight(self) -> torch.Tensor:
        """Effective weight [out_features, in_features]."""
        return self.weight_v * (self.weight_g / self.weight_v.norm())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )


def check_activation(activation: str) -> None:
    """Raise a ValueError naming the valid activations."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {list(ACTIVATIONS.names)}")


# Each activation of `model.activation`: y = W x + b, and g = W' x + b' for a gated one (else None).


@ACTIVATIONS.implements("relu")
def relu(y: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
    return F.relu(y)


@ACTIVATIONS.implements("glu")
def glu(y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return y * torch.sigmoid(g)


@ACTIVATIONS.implements("gated_tanh")
def gated_tanh(y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return torch.tanh(y) * torch.sigmoid(g)


class FCLayer(nn.Module):
    """Dropout, weight-normed linear and a non-linearity: the building block of every MLP here.

    - ``relu``:       relu(W x + b)
    - ``glu``:        (W x + b) * sigmoid(W' x + b')
    - ``gated_tanh``: tanh(W x + b) * sigmoid(W' x + b')   (the paper's choice)

    The gated variants own a second layer ``gate`` (W'), doubling the parameters.

    x: [..., in_dim] -> [..., out_dim]
    """

    def __init__(self, in_dim: int, out_dim: int, *, activation: str = "relu", dropout: float = 0.0) -> None:
        super().__init__()
        check_activation(activation)
        self.activation = activation
        self._act = ACTIVATIONS.implementation(activation)
        self.dropout = nn.Dropout(dropout)
        self.linear = WeightNormLinear(in_dim, out_dim)
        self.gate = WeightNormLinear(in_dim, out_dim) if ACTIVATIONS[activation].gated else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x)
        return self._act(self.linear(x), None if self.gate is None else self.gate(x))

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"
