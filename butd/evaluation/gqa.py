"""GQA in `butd.evaluate` and `butd.predict`: the official GQA metrics of a checkpoint on a split,
and the predictions file in the release's format (`[{"questionId", "prediction"}]`, the input of
its `eval.py`). The metrics' definitions are in `butd.vqa.gqa`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table

from butd.errors import UserError
from butd.vqa.gqa import GQATables, gqa_metrics, submission

#: the headline metrics, in the order the release's evaluation prints them
HEADLINE = ("binary", "open", "accuracy", "consistency", "validity", "plausibility", "distribution")


def split_tables(path: Any, split: str) -> GQATables:
    tables = GQATables.read(path)
    if tables is None:
        raise UserError(f"split '{split}' ({path}) has no GQA tables; prepare it with a GQA data config")
    return tables


def cache_labels(tables: GQATables, qids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Labels [Q] aligned with the tables' rows, -1 for questions not answered."""
    predicted = np.full(len(tables.question_id), -1, np.int64)
    rows = np.searchsorted(tables.question_id, qids)
    predicted[rows] = labels
    return predicted


def evaluate_gqa(split: str, path: Any, qids: np.ndarray, labels: np.ndarray, answers: list[str]) -> dict:
    """The GQA metrics of `labels` (cache answer labels of questions `qids`) and the predictions."""
    tables = split_tables(path, split)
    predicted = cache_labels(tables, qids, labels)
    metrics = gqa_metrics(tables, predicted, answers)
    return {
        "gqa": metrics,
        "balanced_questions": int((tables.balanced & (predicted >= 0)).sum()),
        "predictions": submission(tables.key[predicted >= 0], predicted[predicted >= 0], answers),
    }


def predictions(path: Any, split: str, qids: np.ndarray, labels: list[str]) -> list[dict[str, str]]:
    """`[{"questionId", "prediction"}]` for the answered questions, by GQA's question ids."""
    tables = split_tables(path, split)
    rows = np.searchsorted(tables.question_id, qids)
    return [{"questionId": str(k), "prediction": a} for k, a in zip(tables.key[rows], labels, strict=True)]


def gqa_table(title: str, metrics: dict[str, float]) -> Table:
    """The headline metrics, then accuracy per structural type, semantic type and steps."""
    table = Table(title=title)
    table.add_column("GQA metric")
    table.add_column("value", justify="right")
    for name in HEADLINE:
        if name in metrics:
            suffix = " (lower is better)" if name == "distribution" else ""
            table.add_row(name + suffix, f"{metrics[name]:.2f}")
    for name, value in metrics.items():
        if "/" in name:
            table.add_row(f"accuracy, {name.replace('/', ' ')}", f"{value:.2f}")
    return table
