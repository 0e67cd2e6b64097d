"""The composed models: BUTD attention and the question-only (language prior) baseline."""

from __future__ import annotations

import torch
from torch import nn

from butd.models.precision import compute_dtype

#: size of the box geometry b of each object: x1/w, y1/h, x2/w, y2/h, bw/w, bh/h
SPATIAL_DIM = 6


class BUTDModel(nn.Module):
    """Bottom-up top-down VQA model, assembled from the parts it is given.

    Question vector -> attention over the K object features -> attended image vector;
    both are projected to ``num_hid``, multiplied elementwise and classified.

    ``use_spatial=False`` (the reference) reads the box geometry ``b`` and ignores it. With
    ``use_spatial=True`` each object is ``[v_k; b_k]``, its feature with the 6 numbers of its
    box appended (x1/w, y1/h, x2/w, y2/h, bw/w, bh/h), everywhere the object enters: the
    attention scores it and the attended vector ``sum_k a_k [v_k; b_k]`` goes to ``v_net``, so
    both take ``v_dim + 6`` inputs. The attention can then prefer objects by place and size
    ("what is on the left", "the big one") and ``v_net`` sees where the attended mass lies.
    Appending keeps every layer a plain weight-normed FC (no new module, no extra width), and
    the geometry, already in [0, 1], needs no scaling of its own.

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
        use_spatial: bool = False,
    ) -> None:
        super().__init__()
        #: whether the box geometry b is appended to each object's feature
        self.use_spatial = use_spatial
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

        v: [batch, k, v_dim], any float dtype (float16 as stored); q: [batch, seq_len] long;
        b: [batch, k, 6] (used only with ``use_spatial``, required then); v_mask: [batch, k]
        bool, False for padded objects. Returns logits [batch, num_answers] and att [batch, k, 1].
        """
        logits, att, _, _ = self._parts(v, q, b, v_mask)
        return logits, att

    def forward_parts(
        self,
        v: torch.Tensor,
        q: torch.Tensor,
        b: torch.Tensor | None = None,
        v_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits, the joint representation and the question embedding, for the debias methods
        (`butd.training.debias`): [batch, num_answers], [batch, num_hid], [batch, num_hid]."""
        logits, _, joint, q_emb = self._parts(v, q, b, v_mask)
        return logits, joint, q_emb

    def _parts(
        self,
        v: torch.Tensor,
        q: torch.Tensor,
        b: torch.Tensor | None,
        v_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        # features arrive as stored (float16): one cast to the compute dtype, here, is the only copy
        v = v.to(compute_dtype(v, self.classifier))
        if self.use_spatial:
            v = torch.cat((v, self._spatial(v, b)), dim=2)  # [batch, k, v_dim + 6]
        if v_mask is not None:
            v = v.masked_fill(~v_mask.to(torch.bool).unsqueeze(-1), 0.0)
        w = self.w_emb(q)  # [batch, seq_len, emb_dim]
        q_emb = self.q_encoder(w)  # [batch, num_hid]
        att = self.attention(v, q_emb, v_mask)  # [batch, k, 1]
        v_emb = (att.to(v.dtype) * v).sum(1)  # [batch, v_dim (+ 6)]; softmax's float32 cast back
        joint = self.q_net(q_emb) * self.v_net(v_emb)  # [batch, num_hid]
        return self.classifier(joint), att, joint, q_emb

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

    @staticmethod
    def _spatial(v: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        """b checked against v ([batch, k, 6] for [batch, k, v_dim]) and cast to v's dtype."""
        if b is None:
            raise ValueError("this model uses the box geometry (model.use_spatial=true) but got b=None")
        if b.dim() != 3 or b.shape[:2] != v.shape[:2] or b.size(2) != SPATIAL_DIM:
            raise ValueError(
                f"b has shape {list(b.shape)}; expected [{v.size(0)}, {v.size(1)}, {SPATIAL_DIM}] "
                f"for v of shape {list(v.shape)}"
            )
        return b.to(v.dtype)


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

    def forward_parts(
        self,
        v: torch.Tensor | None,
        q: torch.Tensor,
        b: torch.Tensor | None = None,
        v_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """As BUTDModel's: the joint representation is the projected question."""
        q_emb = self.q_encoder(self.w_emb(q))
        joint = self.q_net(q_emb)
        return self.classifier(joint), joint, q_emb
