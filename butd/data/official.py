"""The official VQA metric's tables in a split's HDF5 file, written by prepare, read per batch.

Why: training logs the official accuracy every epoch without any per-question Python. At
prepare time each question gets the official accuracy of every vocabulary answer that can
score on it; a batch then gathers the accuracy of the predicted answer, as the soft score
is gathered from the targets.

Datasets of an annotated split (`{split}.h5`, written by `butd.data.cache`):

- `questions/gt_answers` str [Q, A]: the A (10 in VQA v2) annotator answers, as given;
- `vqa_acc/offsets` int64 [Q+1], `vqa_acc/labels` int32 [nnz], `vqa_acc/scores` float32 [nnz]:
  CSR of the official accuracy in (0, 1] of each answer label that scores on each question.

With `questions/question_id`, `question_type` and `answer_type` these are all the official
evaluation reads, so `annotations_from_cache` rebuilds its input from the cache alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np

from butd.errors import UserError
from butd.evaluation import ANSWER_TYPES, VocabularyAccuracy


def official_tables(
    annotations: Sequence[Mapping[str, Any]], answers: Sequence[str]
) -> tuple[np.ndarray, list[dict[int, float]]]:
    """The GT answers [Q, A] (str) and, per question, the official accuracy of each answer label
    that scores on it, for `annotations` in order."""
    sizes = {len(a["answers"]) for a in annotations}
    if len(sizes) > 1:
        odd = next(a for a in annotations if len(a["answers"]) != len(annotations[0]["answers"]))
        raise UserError(
            f"question {odd['question_id']} has {len(odd['answers'])} annotator answers, others have "
            f"{len(annotations[0]['answers'])}; official VQA annotations give every question the same number"
        )
    width = sizes.pop() if sizes else 10
    gt = np.empty((len(annotations), width), dtype=object)
    for i, a in enumerate(annotations):
        gt[i] = [str(x["answer"]) for x in a["answers"]]
    table = VocabularyAccuracy(answers)
    return gt, [table(a["answers"]) for a in annotations]


def answer_type_codes(answer_types: Sequence[str]) -> np.ndarray:
    """Index of each answer type in `ANSWER_TYPES` (yes/no 0, number 1, other 2), -1 otherwise."""
    code = {t: i for i, t in enumerate(ANSWER_TYPES)}
    return np.array([code.get(t, -1) for t in answer_types], np.int64)


def _row_positions(offsets: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For CSR rows `idx`: each entry's output row, its column within the row, its position."""
    starts, ends = offsets[idx], offsets[idx + 1]
    lengths = ends - starts
    rows = np.repeat(np.arange(len(idx)), lengths)
    cols = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return rows, cols, cols + np.repeat(starts, lengths)


def csr_rows(
    offsets: np.ndarray, labels: np.ndarray, values: np.ndarray, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows `idx` of a CSR table as a new CSR table."""
    idx = np.asarray(idx, np.int64)
    _, _, pos = _row_positions(offsets, idx)
    new_offsets = np.zeros(len(idx) + 1, np.int64)
    np.cumsum(offsets[idx + 1] - offsets[idx], out=new_offsets[1:])
    return new_offsets, labels[pos], values[pos]


def gather_rows(
    offsets: np.ndarray, labels: np.ndarray, values: np.ndarray, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows `idx` of a CSR table as padded arrays, without a Python loop.

    Returns labels int64 [len(idx), M] (padding -1) and values float32 [len(idx), M], where M is
    the longest of the rows (at least 1).
    """
    rows, cols, pos = _row_positions(offsets, idx)
    width = max(int(cols.max(initial=-1)) + 1, 1)
    out_labels = np.full((len(idx), width), -1, np.int64)
    out_values = np.zeros((len(idx), width), np.float32)
    out_labels[rows, cols] = labels[pos]
    out_values[rows, cols] = values[pos]
    return out_labels, out_values


def annotations_from_cache(h5: h5py.File) -> dict[str, Any]:
    """The official annotation file's content, as far as the evaluation reads it, for a split."""
    q = h5["questions"]
    gt = q["gt_answers"].asstr()[:]
    return {
        "annotations": [
            {
                "question_id": int(qid),
                "image_id": int(image_id),
                "question_type": qtype,
                "answer_type": atype,
                "answers": [{"answer": a, "answer_id": j + 1} for j, a in enumerate(row)],
            }
            for qid, image_id, qtype, atype, row in zip(
                q["question_id"][:],
                q["image_id"][:],
                q["question_type"].asstr()[:],
                q["answer_type"].asstr()[:],
                gt,
                strict=True,
            )
        ]
    }
