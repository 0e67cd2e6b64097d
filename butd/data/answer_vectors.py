"""Per-answer vectors that the two-stream classifier's output rows start from.

Text: the mean GloVe vector of an answer's words, read from the raw GloVe file (the cache holds
GloVe rows for question words only, and answers have words no question has). Image: a user's
.npz file of one image vector per answer, matched to the cache's answer list by name.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from butd.errors import UserError
from butd.vqa.text import load_glove, tokenize

#: how many examples an error lists
_SHOWN = 5


@dataclass
class AnswerGlove:
    """GloVe rows for a list of answers and how many answers had at least one word in GloVe."""

    #: [num_answers, dim] float32, the mean of the answer's words found in GloVe; zero where none
    vectors: np.ndarray
    found: int


def answer_glove(path: str | PathLike[str], answers: list[str], dim: int) -> AnswerGlove:
    """The mean GloVe vector of each answer's words (tokenised as questions are: "t-shirt" is one
    word, "black and white" three), streamed from the GloVe text file at `path`.

    A word GloVe lacks is left out of its answer's mean; an answer with no word in GloVe gets a
    zero row. A GloVe vector that is exactly zero counts as absent (GloVe has none).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"model.classifier_init=glove reads the answers' GloVe vectors from {path}, which does "
            "not exist; fetch it with `bash scripts/download_vqa2.sh glove` (data.glove names it "
            "under data.raw_dir), or set model.classifier_init=random"
        )
    words_of = [tokenize(a) for a in answers]
    words = sorted({w for ws in words_of for w in ws})
    table, _ = load_glove(path, words, dim)
    row_of = {w: i for i, w in enumerate(words)}
    present = np.any(table != 0.0, axis=1)
    vectors = np.zeros((len(answers), dim), dtype=np.float32)
    found = 0
    for a, ws in enumerate(words_of):
        rows = [row_of[w] for w in ws if present[row_of[w]]]
        if rows:
            vectors[a] = table[rows].mean(axis=0, dtype=np.float64)
            found += 1
    return AnswerGlove(vectors=vectors, found=found)


class AnswerVectorsError(UserError, ValueError):
    """An answer-vector file that does not fit the answer list; the message names the file."""


def answer_image_vectors(path: str | PathLike[str], answers: list[str], dim: int) -> np.ndarray:
    """The rows of the .npz file at `path` (`answers`: strings, `vectors`: [n, dim]) in the order
    of `answers`. The file must hold exactly the answer list (any order); otherwise the error
    names the file with how many answers are missing and extra, and the first of each."""
    path = Path(path)
    if not path.is_file():
        raise AnswerVectorsError(
            f"model.classifier_image_init={path} does not exist; give an .npz file with `answers` "
            f"(strings) and `vectors` [num_answers, {dim}], or model.classifier_image_init=null"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            absent = [k for k in ("answers", "vectors") if k not in npz.files]
            if absent:
                raise AnswerVectorsError(
                    f"{path} lacks {absent} (it holds {sorted(npz.files)}); expected `answers` "
                    f"(strings) and `vectors` [num_answers, {dim}]"
                )
            names, vectors = npz["answers"], npz["vectors"]
    except (ValueError, OSError) as err:
        if isinstance(err, AnswerVectorsError):
            raise
        raise AnswerVectorsError(
            f"{path} is not a readable .npz of strings and numbers ({err}); write it with "
            "numpy.savez(path, answers=np.array(answer_list), vectors=matrix)"
        ) from err
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise AnswerVectorsError(f"{path}: `answers` is {names.dtype} {names.shape}; expected 1-d strings")
    if vectors.ndim != 2 or vectors.shape != (len(names), dim) or vectors.dtype.kind not in "fiu":
        raise AnswerVectorsError(
            f"{path}: `vectors` is {vectors.dtype} {vectors.shape}; expected numbers "
            f"[{len(names)}, {dim}] (one {dim}-d image vector per answer: the features' size)"
        )
    listed = [str(n) for n in names]
    doubled = sorted(n for n, count in Counter(listed).items() if count > 1)
    if doubled:
        raise AnswerVectorsError(f"{path}: {len(doubled)} answers appear twice, e.g. {doubled[:_SHOWN]}")
    wanted, have = set(answers), set(listed)
    missing = [a for a in answers if a not in have]
    extra = [n for n in listed if n not in wanted]
    if missing or extra:
        raise AnswerVectorsError(
            f"{path} does not match the cache's answer list ({len(answers)} answers, the file has "
            f"{len(listed)}): {len(missing)} missing from the file (e.g. {missing[:_SHOWN]}), "
            f"{len(extra)} extra in the file (e.g. {extra[:_SHOWN]}); write one vector for each "
            "answer of the cache's answers.json"
        )
    if not np.isfinite(vectors).all():
        row = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
        raise AnswerVectorsError(f"{path}: the vector of answer {listed[row]!r} is not finite")
    order = {n: i for i, n in enumerate(listed)}
    return np.asarray(vectors, dtype=np.float32)[[order[a] for a in answers]]
