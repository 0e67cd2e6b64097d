"""The reference loss and the soft VQA scores, as torchmetrics so they sync across processes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import Metric


def vqa_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits averaged over batch x answers, times the number of answers.

    The reference scales the mean by `num_answers`, which makes the loss a per-question
    sum; the learning rate 2e-3 and clip 0.25 were tuned for this scale.

    logits, target: [batch, num_answers]; target holds soft scores in [0, 1].
    """
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="mean")
    return loss * target.size(1)


def argmax_scores(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft score of the argmax answer for each question. [batch, num_answers] -> [batch]."""
    return target.gather(1, logits.argmax(dim=1, keepdim=True)).squeeze(1)


class _MeanOverQuestions(Metric):
    """Mean of a per-question value, reported in percent like the reference prints it."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _add(self, per_question: torch.Tensor) -> None:
        self.total += per_question.double().sum()
        self.count += per_question.numel()

    def compute(self) -> torch.Tensor:
        return (100.0 * self.total / self.count.clamp(min=1)).float()


class VQAScore(_MeanOverQuestions):
    """Mean soft score of the argmax answer: the reference's "score"."""

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        self._add(argmax_scores(logits.detach(), target))


class UpperBound(_MeanOverQuestions):
    """Mean best achievable soft score: what a perfect model over this vocabulary would get."""

    def update(self, target: torch.Tensor) -> None:
        self._add(target.max(dim=1).values)
