"""Question side: word embedding and GRU encoder."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class WordEmbedding(nn.Module):
    """Embedding with an extra all-zero padding row at index ``ntoken``.

    Questions are front-padded with ``ntoken``; ``padding_idx`` keeps that row zero and
    out of the gradient, so padding contributes nothing but GRU steps.

    q: [batch, seq_len] long -> [batch, seq_len, emb_dim]
    """

    def __init__(self, ntoken: int, emb_dim: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.ntoken = ntoken
        self.emb_dim = emb_dim
        self.emb = nn.Embedding(ntoken + 1, emb_dim, padding_idx=ntoken)
        self.dropout = nn.Dropout(dropout)

    @property
    def padding_idx(self) -> int:
        return self.ntoken

    @torch.no_grad()
    def init_from(self, matrix: torch.Tensor | np.ndarray) -> None:
        """Copy pretrained vectors (e.g. GloVe) into the word rows; the padding row stays zero.

        matrix: [ntoken, emb_dim]; rows for words missing from GloVe should be zero.
        """
        weights = torch.as_tensor(np.asarray(matrix) if not torch.is_tensor(matrix) else matrix)
        expected = (self.ntoken, self.emb_dim)
        if tuple(weights.shape) != expected:
            raise ValueError(f"embedding matrix has shape {tuple(weights.shape)}, expected {expected}")
        self.emb.weight[: self.ntoken].copy_(weights.to(self.emb.weight))
        self.emb.weight[self.ntoken].zero_()

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.emb(q))


class QuestionEncoder(nn.Module):
    """One-layer unidirectional GRU; the last step's output is the question vector.

    Front padding makes the last step the last real word for every question. Under mixed
    precision it runs in float32 (`GRU_DTYPE_UNDER_AUTOCAST`), so its small gradients keep their bits.

    w_emb: [batch, seq_len, emb_dim] -> [batch, num_hid]
    """

    def __init__(self, emb_dim: int, num_hid: int) -> None:
        super().__init__()
        self.num_hid = num_hid
        self.rnn = nn.GRU(emb_dim, num_hid, num_layers=1, batch_first=True)

    def forward(self, w_emb: torch.Tensor) -> torch.Tensor:
        # The GRU runs in its parameters' dtype (float32 under mixed precision), never autocast's:
        # CUDA autocast has run cuDNN's RNN in float16 even under bf16, with no gradient scaler.
        with torch.autocast(w_emb.device.type, enabled=False):
            output, _ = self.rnn(w_emb.to(self.rnn.weight_hh_l0.dtype))
        return output[:, -1]
