"""Answer classifiers over the joint question-image representation: the reference's two-layer MLP
and the paper's two-stream classifier with output rows that can start from answer vectors."""

from __future__ import annotations

import numpy as np
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


class TwoStreamClassifier(nn.Module):
    """Teney et al. 2018, section 3.5: a text stream and an image stream, logits summed.

    ``text = dropout(FC(in -> text_dim))``, ``image = dropout(FC(in -> image_dim))`` (weight-normed
    FC layers with the model's activation, as everywhere else); each goes through a linear output
    layer to the answers, and the answer's logit is the sum of the two (the sigmoid, or softmax,
    is taken of the sum). Row a of ``text_out`` lives in the text embedding space (300-d GloVe)
    and row a of ``image_out`` in the image feature space (v_dim), so they can start from answer
    a's word vectors and from image features of answer a (`init_text_rows`, `init_image_rows`).

    The output layers are plain ``nn.Linear``, not weight-normed: a row is then exactly the
    vector it was initialised from and trains as its own free vector. Weight norm's single ``g``
    over the whole matrix would start at ``||V||_F`` (the rows unchanged) but would afterwards
    rescale all answers' rows together and divide the rows' gradients by ``||V||_F / g``.

    x: [batch, in_dim] -> [batch, num_answers]
    """

    def __init__(
        self,
        in_dim: int,
        text_dim: int,
        image_dim: int,
        num_answers: int,
        *,
        activation: str = "relu",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.text = FCLayer(in_dim, text_dim, activation=activation)
        self.image = FCLayer(in_dim, image_dim, activation=activation)
        self.dropout = nn.Dropout(dropout)
        self.text_out = nn.Linear(text_dim, num_answers)
        self.image_out = nn.Linear(image_dim, num_answers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        text = self.text_out(self.dropout(self.text(x)))
        return text + self.image_out(self.dropout(self.image(x)))

    def init_text_rows(self, vectors: torch.Tensor | np.ndarray) -> None:
        """Row a of the text output layer := ``vectors[a]`` ([num_answers, text_dim], e.g. GloVe)."""
        _copy_rows(self.text_out, vectors, "text")

    def init_image_rows(self, vectors: torch.Tensor | np.ndarray) -> None:
        """Row a of the image output layer := ``vectors[a]`` ([num_answers, image_dim])."""
        _copy_rows(self.image_out, vectors, "image")


@torch.no_grad()
def _copy_rows(layer: nn.Linear, vectors: torch.Tensor | np.ndarray, stream: str) -> None:
    weights = torch.as_tensor(vectors)
    expected = tuple(layer.weight.shape)
    if tuple(weights.shape) != expected:
        raise ValueError(
            f"the {stream} stream's answer vectors have shape {tuple(weights.shape)}, expected "
            f"{expected} (num_answers, {stream} dim)"
        )
    layer.weight.copy_(weights.to(layer.weight))
