"""The official GQA metrics of a validation or test epoch (`butd.vqa.gqa`), for GQA caches.

Each step keeps the batch's question ids and argmax answers on the device (no host read inside a
step); at the epoch's end they are gathered from every process, matched with the split's GQA
tables and scored, and the module logs `val/gqa/<metric>` (`test/gqa/<metric>`).
"""

from __future__ import annotations

import numpy as np
import torch

from butd.vqa.gqa import GQATables, gqa_metrics


class GQAEpoch:
    """Predictions of one epoch, by question id; `scores` turns them into the GQA metrics."""

    def __init__(self) -> None:
        self.ids: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def reset(self) -> None:
        self.ids, self.labels = [], []

    def update(self, question_id: torch.Tensor, logits: torch.Tensor) -> None:
        """question_id: [batch] int64, logits: [batch, num_answers]."""
        self.ids.append(question_id.detach())
        self.labels.append(logits.detach().argmax(dim=1))

    def _gathered(self) -> tuple[np.ndarray, np.ndarray]:
        ids = torch.cat(self.ids).cpu().numpy() if self.ids else np.zeros(0, np.int64)
        labels = torch.cat(self.labels).cpu().numpy() if self.labels else np.zeros(0, np.int64)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            parts: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(parts, (ids, labels))
            ids = np.concatenate([p[0] for p in parts])
            labels = np.concatenate([p[1] for p in parts])
        return ids, labels

    def scores(self, tables: GQATables, answers: list[str]) -> dict[str, float]:
        """The GQA metrics of the epoch's predictions (a question predicted twice, as a distributed
        sampler's padding does, counts once)."""
        ids, labels = self._gathered()
        predicted = np.full(len(tables.question_id), -1, np.int64)
        if len(tables.question_id) == 0:
            return gqa_metrics(tables, predicted, answers)
        rows = np.minimum(np.searchsorted(tables.question_id, ids), len(tables.question_id) - 1)
        known = tables.question_id[rows] == ids
        predicted[rows[known]] = labels[known]
        return gqa_metrics(tables, predicted, answers)
