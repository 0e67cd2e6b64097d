"""The official VQA metric's tables in a split's HDF5 file, written by prepare, read per batch.

Why: training logs the official accuracy every epoch without any per-question Python. At
prepare time each question gets the official accuracy of every vocabulary answer that can
score on it; a batch then gathers the accuracy of the predicted answer, as the soft score
is gathered from the targets.

Datasets of an annotated split (`{split}.h5`):

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

_STR = h5py.string_dtype(encoding="utf-8")


def write_official_tables(
    h5: h5py.File, annotations: Sequence[Mapping[str, Any]], answers: Sequence[str]
) -> None:
    """Write the GT answers and the per-answer official accuracies of `annotations` (in order)."""
    sizes = {len(a["answers"]) for a in annotations}
    if len(sizes) > 1:
        odd = next(a for a in annotations if len(a["answers"]) != len(annotations[0]["answers"]))
        raise UserError(
            f"question {odd['question_id']} has {len(odd['answers'])} annotator answers, others have "
            f"{len(annotations[0]['answers'])}; official VQA annotations give every question the same number"
        )
    width = sizes.pop() if sizes else 10
    gt = np.array([[str(x["answer"]) for x in a["answers"]] for a in annotations], dtype=object)
    h5["questions"].create_dataset("gt_answers", data=gt.reshape(len(annotations), width), dtype=_STR)

    table = VocabularyAccuracy(answers)
    offsets = np.zeros(len(annotations) + 1, np.int64)
    labels: list[int] = []
    scores: list[float] = []
    for i, a in enumerate(annotations):
        accs = table(a["answers"])
        labels += accs.keys()
        scores += accs.values()
        offsets[i + 1] = len(labels)
    g = h5.create_group("vqa_acc")
    g.create_dataset("offsets", data=offsets)
    g.create_dataset("labels", data=np.array(labels, np.int32))
    g.create_dataset("scores", data=np.array(scores, np.float32))


def answer_type_codes(answer_types: Sequence[str]) -> np.ndarray:
    """Index of each answer type in `ANSWER_TYPES` (yes/no 0, number 1, other 2), -1 otherwise."""
    code = {t: i for i, t in enumerate(ANSWER_TYPES)}
    return np.array([code.get(t, -1) for t in answer_types], np.int64)


def gather_rows(
    offsets: np.ndarray, labels: np.ndarray, values: np.ndarray, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows `idx` of a CSR table as padded arrays, without a Python loop.

    Returns labels int64 [len(idx), M] (padding -1) and values float32 [len(idx), M], where M is
    the longest of the rows (at least 1).
    """
    starts, ends = offsets[idx], offsets[idx + 1]
    lengths = ends - starts
    width = max(int(lengths.max(initial=0)), 1)
    rows = np.repeat(np.arange(len(idx)), lengths)
    cols = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    pos = cols + np.repeat(starts, lengths)
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
