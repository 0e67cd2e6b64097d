"""The official VQA accuracy of an answer on one question, and its tables in a split's HDF5 file.

The accuracy is computed as the official evaluation code (HEAD a013f00) does. Per question,
the answer and the 10 ground-truth (GT) answers first have newlines and tabs replaced by
spaces and are stripped. Only when the GT answers are NOT all identical after that are the GT
answers and the prediction normalised (punctuation, number words, articles, contractions, the
same rules as `butd.vqa.answers` minus its final comma removal). The accuracy is then the
mean, over the 10 leave-one-out subsets of the GT answers, of min(1, matches / 3), where an
answer is left out by dict equality (answer text, confidence and id), as the official code
compares them. `butd.evaluation.vqa_eval` aggregates it over a results file.

Why tables: training logs the official accuracy every epoch without any per-question Python.
At prepare time each question gets the official accuracy of every vocabulary answer that can
score on it; a batch then gathers the accuracy of the predicted answer, as the soft score is
gathered from the targets.

Datasets of an annotated split (`{split}.h5`, written by `butd.preparation.build`):

- `questions/gt_answers` str [Q, A]: the A (10 in VQA v2) annotator answers, as given;
- `vqa_acc/offsets` int64 [Q+1], `vqa_acc/labels` int32 [nnz], `vqa_acc/scores` float32 [nnz]:
  CSR (`butd.vqa.csr`) of the official accuracy in (0, 1] of each answer label that scores on
  each question.

With `questions/question_id`, `question_type` and `answer_type` these are all the official
evaluation reads, so `annotations_from_cache` rebuilds its input from the cache alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np

from butd.errors import UserError
from butd.vqa.answers import process_digit_article, process_punctuation

#: answer types of VQA v2, as the official files spell them
ANSWER_TYPES: tuple[str, ...] = ("yes/no", "number", "other")


class ResultsError(UserError):
    """Results or annotation contents the official evaluation would refuse."""


def clean(text: str) -> str:
    """Newlines and tabs to spaces, then strip: done to every answer before anything else."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize(text: str) -> str:
    """The evaluation's normalisation: punctuation, then digits/articles/contractions."""
    return process_digit_article(process_punctuation(text))


def question_accuracy(gt_answers: Sequence[Mapping[str, Any]], answer: str) -> float:
    """Official accuracy in [0, 1] of `answer` against one question's GT answer dicts.

    gt_answers: the annotation's `answers` list (dicts with at least an `answer` key).
    """
    gts = [{**g, "answer": clean(g["answer"])} for g in gt_answers]
    res = clean(answer)
    if len({g["answer"] for g in gts}) > 1:
        gts = [{**g, "answer": normalize(g["answer"])} for g in gts]
        res = normalize(res)
    if not gts:
        raise ResultsError("an annotation has no GT answers; the official metric needs them")
    total = 0.0
    for left_out in gts:
        matches = sum(1 for g in gts if g != left_out and g["answer"] == res)
        total += min(1.0, matches / 3)
    return total / len(gts)


class VocabularyAccuracy:
    """The official accuracy of every answer in a fixed answer list against one question.

    Used at prepare time so that training can log the official metric by a table lookup.
    Only answers that match some GT answer (after the same cleaning and, for non-unanimous
    GT, normalisation as `question_accuracy`) can score; they are found by dictionary lookups.
    """

    def __init__(self, answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self._by_clean: dict[str, list[int]] = {}
        self._by_normal: dict[str, list[int]] = {}
        for label, a in enumerate(self.answers):
            self._by_clean.setdefault(clean(a), []).append(label)
            self._by_normal.setdefault(normalize(clean(a)), []).append(label)

    def __call__(self, gt_answers: Sequence[Mapping[str, Any]]) -> dict[int, float]:
        """{label: accuracy in (0, 1]} for the labels that score on this question."""
        gts = [clean(g["answer"]) for g in gt_answers]
        if len(set(gts)) > 1:
            keys, table = {normalize(g) for g in gts}, self._by_normal
        else:
            keys, table = set(gts), self._by_clean
        out: dict[int, float] = {}
        for key in sorted(keys):
            labels = table.get(key, [])
            if labels:
                acc = question_accuracy(gt_answers, self.answers[labels[0]])
                if acc > 0:
                    out.update({label: acc for label in labels})
        return dict(sorted(out.items()))


def official_tables(
    annotations: Sequence[Mapping[str, Any]], answers: Sequence[str]
) -> tuple[np.ndarray, list[dict[int, float]]]:
    """The GT answers [Q, A] (str) and, per question, the official accuracy of each answer label
    that scores on it, for `annotations` in order."""
    sizes = Counter(len(a["answers"]) for a in annotations)
    width = sizes.most_common(1)[0][0] if sizes else 10
    if len(sizes) > 1:  # the odd one out is the one named, not the question after it
        odd = next(a for a in annotations if len(a["answers"]) != width)
        raise UserError(
            f"question {odd['question_id']} has {len(odd['answers'])} annotator answers, most have "
            f"{width}; official VQA annotations give every question the same number"
        )
    gt = np.empty((len(annotations), width), dtype=object)
    for i, a in enumerate(annotations):
        gt[i] = [str(x["answer"]) for x in a["answers"]]
    table = VocabularyAccuracy(answers)
    return gt, [table(a["answers"]) for a in annotations]


def answer_type_codes(answer_types: Sequence[str]) -> np.ndarray:
    """Index of each answer type in `ANSWER_TYPES` (yes/no 0, number 1, other 2), -1 otherwise."""
    code = {t: i for i, t in enumerate(ANSWER_TYPES)}
    return np.array([code.get(t, -1) for t in answer_types], np.int64)


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
