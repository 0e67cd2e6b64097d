"""Answer classifier: a two-layer MLP over the joint question-image representation."""

from __future__ import annotations

import torch
from torch import nn

from butd.models.fc import FCLayer, WeightNormLinear


class Classifier(nn.Module):
    """FC(in -> hid) with activation, dropout, then a weight-normed linear to answer logits.

    Logits are scored with a sigmoid per answer (soft targets), not a softmax.

    x: [batch, in_dim] -> [batch, out_dim]
    """

    def __init__(
        self,
        in_dim: int,
        hid_dim: int,
        out_dim: int,
        *,
        activation: str = "relu",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.hidden = FCLayer(in_dim, hid_dim, activation=activation)
        self.dropout = nn.Dropout(dropout)
        self.out = WeightNormLinear(hid_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.hidden(x)))
