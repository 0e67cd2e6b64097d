"""The reference loss and the soft VQA scores, as torchmetrics so they sync across processes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from butd.config.model import OUTPUTS


@OUTPUTS.implements("sigmoid")
def vqa_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits averaged over batch x answers, times the number of answers.

    The reference scales the mean by `num_answers`, which makes the loss a per-question
    sum; the learning rate 2e-3 and clip 0.25 were tuned for this scale.

    logits, target: [batch, num_answers]; target holds soft scores in [0, 1].
    """
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="mean")
    return loss * target.size(1)


@OUTPUTS.implements("softmax")
def vqa_softmax_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of a softmax over the answers against the soft scores made a distribution.

    Each question's soft scores are divided by their sum (scores 1 and 0.3 give 0.77 and 0.23);
    the loss is -sum_a p_a log softmax(z)_a, averaged over the batch's questions. A question
    whose scores are all zero (no annotator answer in the vocabulary) contributes zero and still
    counts in the mean, so a batch's scale does not depend on how many such questions it has.
    No factor: the per-question cross-entropy is already a sum over answers, as the reference's
    scaled BCE is, and Adamax's steps barely depend on a constant factor on the loss.

    logits, target: [batch, num_answers]; target holds soft scores in [0, 1].
    """
    target = target.float()
    dist = target / target.sum(dim=1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny)
    return -(dist * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


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

    def _add(self, per_question: torch.Tensor, count: torch.Tensor | int | None = None) -> None:
        """`count`: how many questions `per_question` stands for (its length when None)."""
        self.total += per_question.double().sum()
        self.count += per_question.numel() if count is None else count

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


class VQAAccuracy(_MeanOverQuestions):
    """Official VQA accuracy of the argmax answer, looked up in the table prepare stores.

    acc_labels: [batch, M] answer labels that score (-1 pads), acc_values: [batch, M] their
    official accuracy in (0, 1]; answer_type: [batch] codes (see `butd.vqa.official`).
    With `answer_type` set, only questions of that type count.
    """

    def __init__(self, answer_type: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.answer_type = answer_type

    def update(
        self,
        logits: torch.Tensor,
        acc_labels: torch.Tensor,
        acc_values: torch.Tensor,
        answer_type: torch.Tensor,
    ) -> None:
        pred = logits.detach().argmax(dim=1, keepdim=True)
        acc = ((acc_labels == pred) * acc_values).sum(dim=1)
        if self.answer_type is None:
            self._add(acc)
            return
        # a mask product, not `acc[mask]`: boolean indexing waits for the device to count
        mine = answer_type == self.answer_type
        self._add(acc * mine, count=mine.sum())


class WeightedMean(Metric):
    """Mean of per-batch values weighted by batch size, updated without reading the device.

    torchmetrics' `MeanMetric` turns a Python weight into a tensor and checks for NaN with a
    host read on every update; a non-finite loss here is the divergence guard's business.
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("weight", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor, weight: int) -> None:
        self.total += value.detach().double() * weight
        self.weight += weight

    def compute(self) -> torch.Tensor:
        return (self.total / self.weight.clamp(min=1)).float()


class TypedMean(Metric):
    """Mean of a per-question value over the questions of one answer type (all with None), times
    `scale` (100 for a share in percent). No host read: the type is a mask product."""

    full_state_update = False

    def __init__(self, answer_type: int | None = None, scale: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.answer_type = answer_type
        self.scale = scale
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor, answer_type: torch.Tensor) -> None:
        """value: [batch] float; answer_type: [batch] codes (`butd.vqa.official`)."""
        value = value.detach().double()
        if self.answer_type is None:
            self.total += value.sum()
            self.count += value.numel()
            return
        mine = (answer_type == self.answer_type).double()
        self.total += (value * mine).sum()
        self.count += mine.sum()

    def compute(self) -> torch.Tensor:
        return (self.scale * self.total / self.count.clamp(min=1)).float()


def typed_mean_metrics(scale: float = 1.0) -> torch.nn.ModuleDict:
    """A TypedMean overall (`overall`) and per answer type (`yes_no`, `number`, `other`)."""
    from butd.vqa.official import ANSWER_TYPES

    metrics = {"overall": TypedMean(scale=scale)}
    metrics.update({_type_key(t): TypedMean(answer_type=i, scale=scale) for i, t in enumerate(ANSWER_TYPES)})
    return torch.nn.ModuleDict(metrics)


def diagnostic_name(stage: str, name: str, key: str) -> str:
    """`val/diag/gate` overall, `val/diag/gate/yes_no` etc. per answer type."""
    return f"{stage}/diag/{name}" if key == "overall" else f"{stage}/diag/{name}/{key}"


def vqa_accuracy_metrics() -> torch.nn.ModuleDict:
    """Overall and per answer type official accuracy; `vqa_accuracy_name` gives their log names."""
    from butd.vqa.official import ANSWER_TYPES

    metrics = {"overall": VQAAccuracy()}
    metrics.update({_type_key(t): VQAAccuracy(answer_type=i) for i, t in enumerate(ANSWER_TYPES)})
    return torch.nn.ModuleDict(metrics)


def vqa_accuracy_name(stage: str, key: str) -> str:
    """`val/vqa_acc` for the overall accuracy, `val/vqa_acc/yes_no` etc. per answer type."""
    return f"{stage}/vqa_acc" if key == "overall" else f"{stage}/vqa_acc/{key}"


def _type_key(answer_type: str) -> str:
    return answer_type.replace("/", "_")
