"""The question-type prior: per question type, the mean soft target of each answer over the
training questions (the "bias" the debias methods model; Clark et al. 2019)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from butd.data.splits import SplitTables


@dataclass
class QuestionTypes:
    """The training split's question types (sorted) and their prior, float32 [types, num_answers]."""

    names: list[str]
    prior: np.ndarray

    @classmethod
    def of(cls, tables: SplitTables, num_answers: int) -> QuestionTypes | None:
        """From annotated split tables; None when they carry no question types (all empty)."""
        if tables.question_type is None or not any(tables.question_type):
            return None
        names, codes = np.unique(tables.question_type.astype(str), return_inverse=True)
        offsets, labels, scores = tables.targets
        rows = np.repeat(codes, np.diff(offsets))  # the question type of each stored (label, score)
        sums = np.zeros((len(names), num_answers), np.float64)
        np.add.at(sums, (rows, labels.astype(np.int64)), scores)
        counts = np.bincount(codes, minlength=len(names)).astype(np.float64)
        return cls(names=[str(n) for n in names], prior=(sums / counts[:, None]).astype(np.float32))

    def codes(self, question_type: np.ndarray) -> np.ndarray:
        """Each question's row of `prior`; a type unseen in training gets `len(names)` (no prior)."""
        index = {n: i for i, n in enumerate(self.names)}
        return np.array([index.get(str(t), len(self.names)) for t in question_type], np.int64)
