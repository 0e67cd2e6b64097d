"""The reference loss and the VQA metrics, under the name they had before `butd.training` held them:
`from butd.metrics import vqa_bce_loss` keeps working. New code imports `butd.training.metrics`."""

from butd.training.metrics import (
    UpperBound,
    VQAAccuracy,
    VQAScore,
    argmax_scores,
    vqa_accuracy_metrics,
    vqa_accuracy_name,
    vqa_bce_loss,
)

__all__ = [
    "UpperBound",
    "VQAAccuracy",
    "VQAScore",
    "argmax_scores",
    "vqa_accuracy_metrics",
    "vqa_accuracy_name",
    "vqa_bce_loss",
]
