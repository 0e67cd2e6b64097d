"""The composed models: BUTD attention and the question-only (language prior) baseline."""

from __future__ import annotations

import torch
from torch import nn


class BUTDModel(nn.Module):
    """Bottom-up top-down VQA model, assembled from the parts it is given.

    Question vector -> attention over the K object features -> attended image vector;
    both are projected to ``num_hid``, multiplied elementwise and classified.

    Padded objects (``v_mask`` False) are zeroed before anything reads them, so whatever they
    hold, NaN included, reaches neither the output nor the gradients.
    """

    def __init__(
        self,
        *,
        w_emb: nn.Module,
        q_encoder: nn.Module,
        attention: nn.Module,
        q_net: nn.Module,
        v_net: nn.Module,
        classifier: nn.Module,
    ) -> None:
        super().__init__()
        self.w_emb = w_emb
        self.q_encoder = q_encoder
        self.attention = attention
        self.q_net = q_net
        self.v_net = v_net
        self.classifier = classifier

    def forward_with_attention(
        self,
        v: torch.Tensor,
        q: torch.Tensor,
        b: torch.Tensor | None = None,
        v_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the attention weights, for visualisation.

        v: [batch, k, v_dim]; q: [batch, seq_len] long; b: [batch, k, b_dim] (unused, as in
        the reference); v_mask: [batch, k] bool, False for padded objects.
        Returns logits [batch, num_answers] and att [batch, k, 1].
        """
        if v_mask is not None:
            v = v.masked_fill(~v_mask.to(torch.bool).unsqueeze(-1), 0.0)
        w = self.w_emb(q)  # [batch, seq_len, emb_dim]
        q_emb = self.q_encoder(w)  # [batch, num_hid]
        att = self.attention(v, q_emb, v_mask)  # [batch, k, 1]
        v_emb = (att * v).sum(1)  # [batch, v_dim]
        joint = self.q_net(q_emb) * self.v_net(v_emb)  # [batch, num_hid]
        return self.classifier(joint), att

    def forward(
        self,
        v: torch.Tensor,
        q: torch.Tensor,
        b: torch.Tensor | None = None,
        v_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """v: [batch, k, v_dim], q: [batch, seq_len] -> logits [batch, num_answers]."""
        logits, _ = self.forward_with_attention(v, q, b, v_mask)
        return logits


class QuestionOnlyModel(nn.Module):
    """Language-prior baseline: answers from the question alone, ignoring the image.

    Shares BUTDModel's forward signature so it drops into the same training loop.
    """

    def __init__(
        self,
        *,
        w_emb: nn.Module,
        q_encoder: nn.Module,
        q_net: nn.Module,
        classifier: nn.Module,
    ) -> None:
        super().__init__()
        self.w_emb = w_emb
        self.q_encoder = q_encoder
        self.q_net = q_net
        self.classifier = classifier

    def forward(
        self,
        v: torch.Tensor | None,
        q: torch.Tensor,
        b: torch.Tensor | None = None,
        v_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """q: [batch, seq_len] -> logits [batch, num_answers]; v, b and v_mask are ignored."""
        return self.classifier(self.q_net(self.q_encoder(self.w_emb(q))))
