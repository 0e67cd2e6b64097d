"""Top-down attention over the K bottom-up object features, conditioned on the question."""

from __future__ import annotations

import torch
from torch import nn

from butd.config.model import ATTENTIONS
from butd.models.fc import FCLayer, WeightNormLinear


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over objects (dim 1) that gives masked-out (False) objects exactly zero weight.

    A row with every object masked gets all-zero weights rather than NaN.

    logits: [batch, k, 1]; mask: [batch, k] bool or None -> [batch, k, 1]
    """
    if mask is None:
        return torch.softmax(logits, dim=1)
    keep = mask.to(torch.bool).unsqueeze(-1)
    logits = logits.masked_fill(~keep, torch.finfo(logits.dtype).min)
    return torch.softmax(logits, dim=1) * keep


class ConcatAttention(nn.Module):
    """The paper's attention: an MLP on [v_k; q] for each object, then a scalar score.

    v: [batch, k, v_dim], q: [batch, q_dim], mask: [batch, k] -> weights [batch, k, 1]
    """

    def __init__(self, v_dim: int, q_dim: int, num_hid: int, *, activation: str = "relu") -> None:
        super().__init__()
        self.nonlinear = FCLayer(v_dim + q_dim, num_hid, activation=activation)
        self.linear = WeightNormLinear(num_hid, 1)

    def logits(self, v: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Unnormalised scores [batch, k, 1]."""
        q = q.unsqueeze(1).expand(-1, v.size(1), -1)
        return self.linear(self.nonlinear(torch.cat((v, q), dim=2)))

    def forward(self, v: torch.Tensor, q: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return masked_softmax(self.logits(v, q), mask)


class ProjectionAttention(nn.Module):
    """The reference's "newatt": project v and q separately, multiply, then score.

    Cheaper than concat (v is projected once, not together with q for each object) and the
    variant behind the reference's 63.58 val score.

    v: [batch, k, v_dim], q: [batch, q_dim], mask: [batch, k] -> weights [batch, k, 1]
    """

    def __init__(
        self,
        v_dim: int,
        q_dim: int,
        num_hid: int,
        *,
        activation: str = "relu",
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.v_proj = FCLayer(v_dim, num_hid, activation=activation)
        self.q_proj = FCLayer(q_dim, num_hid, activation=activation)
        self.dropout = nn.Dropout(dropout)
        self.linear = WeightNormLinear(num_hid, 1)

    def logits(self, v: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Unnormalised scores [batch, k, 1]."""
        joint = self.v_proj(v) * self.q_proj(q).unsqueeze(1)
        return self.linear(self.dropout(joint))

    def forward(self, v: torch.Tensor, q: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return masked_softmax(self.logits(v, q), mask)


@ATTENTIONS.implements("newatt")
def _projection(v_dim: int, q_dim: int, num_hid: int, *, activation: str, dropout: float) -> nn.Module:
    return ProjectionAttention(v_dim, q_dim, num_hid, activation=activation, dropout=dropout)


@ATTENTIONS.implements("concat")
def _concat(v_dim: int, q_dim: int, num_hid: int, *, activation: str, dropout: float) -> nn.Module:
    return ConcatAttention(v_dim, q_dim, num_hid, activation=activation)  # no dropout in the paper's


def build_attention(
    name: str,
    v_dim: int,
    q_dim: int,
    num_hid: int,
    *,
    activation: str = "relu",
    dropout: float = 0.2,
) -> nn.Module:
    """Attention module by name (`model.attention`). ``dropout`` applies to newatt only (concat has none)."""
    if name not in ATTENTIONS:
        raise ValueError(f"unknown attention {name!r}; expected one of {list(ATTENTIONS.names)}")
    return ATTENTIONS.implementation(name)(v_dim, q_dim, num_hid, activation=activation, dropout=dropout)
