"""Checks of the question and annotation files where they enter `prepare`, naming file and question.

Later stages trust these files: a duplicate question id used to pass prepare and surface in
`evaluate` (refused) or `predict` (a results file with the id twice); a fractional id was
truncated by the int64 array; a NUL in a question went into the cache; an annotation with 9
answers was blamed on the question after it. Each is refused here, with the entry's position
in its list, its question id and the fix.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from butd.errors import UserError

#: control characters a question may not hold (tab, newline and carriage return are whitespace
#: to the tokeniser and allowed); NUL is the usual sign of a damaged or binary file
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class InputError(UserError, ValueError):
    """A raw question or annotation file holds an entry prepare cannot use; the message says where."""


def _where(path: Path, key: str, i: int, entry: Any) -> str:
    qid = entry.get("question_id") if isinstance(entry, dict) else None
    return f"{path}: {key}[{i}]" + (f" (question_id {qid!r})" if qid is not None else "")


def _integer(path: Path, key: str, i: int, entry: dict, field: str) -> int:
    value = entry.get(field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(
            f"{_where(path, key, i, entry)}: {field} is {value!r}, not an integer; official VQA files "
            "hold whole-number ids (a fractional id would be truncated into another question's)"
        )
    return value


def _ids(path: Path, key: str, i: int, entry: Any) -> int:
    """The entry's question id, after checking it is an object with whole-number ids."""
    if not isinstance(entry, dict):
        raise InputError(f"{path}: {key}[{i}] is {type(entry).__name__}, not an object")
    _integer(path, key, i, entry, "image_id")
    return _integer(path, key, i, entry, "question_id")


def _unique(path: Path, key: str, ids: list[int]) -> None:
    counts = Counter(ids)
    twice = [qid for qid, n in counts.items() if n > 1]
    if twice:
        first = twice[0]
        at = [i for i, qid in enumerate(ids) if qid == first]
        raise InputError(
            f"{path}: question_id {first} appears {counts[first]} times ({key}{at[:5]}), and "
            f"{len(twice) - 1} more ids repeat; every question needs its own id (evaluation and the "
            "results file key on it). Fix or re-download the file."
        )


def check_questions(path: Path, questions: list[Any]) -> None:
    """Every question: whole-number question_id and image_id, a text without control characters,
    ids unique in the file."""
    ids = []
    for i, q in enumerate(questions):
        ids.append(_ids(path, "questions", i, q))
        text = q.get("question")
        if not isinstance(text, str):
            raise InputError(f"{_where(path, 'questions', i, q)}: question is {text!r}, not a text")
        bad = CONTROL.search(text)
        if bad:
            raise InputError(
                f"{_where(path, 'questions', i, q)}: the question holds the control character "
                f"{bad.group()!r} at position {bad.start()} ({text[:60]!r}); a damaged file? "
                "Fix or re-download it"
            )
    _unique(path, "questions", ids)


def check_annotations(path: Path, annotations: list[Any]) -> None:
    """Every annotation: whole-number ids, unique question ids, and as many annotator answers as
    most annotations of the file have (10 in VQA v2), each a text; the odd one is named."""
    ids = []
    for i, a in enumerate(annotations):
        ids.append(_ids(path, "annotations", i, a))
        answers = a.get("answers")
        if not isinstance(answers, list) or not all(
            isinstance(x, dict) and isinstance(x.get("answer"), str) for x in answers
        ):
            raise InputError(
                f"{_where(path, 'annotations', i, a)}: answers must be a list of {{'answer': text}} objects"
            )
    _unique(path, "annotations", ids)
    sizes = Counter(len(a["answers"]) for a in annotations)
    if len(sizes) > 1:
        usual = sizes.most_common(1)[0][0]
        i, odd = next((i, a) for i, a in enumerate(annotations) if len(a["answers"]) != usual)
        raise InputError(
            f"{_where(path, 'annotations', i, odd)}: {len(odd['answers'])} annotator answers, "
            f"{sizes[usual]:,} of the file's {len(annotations):,} annotations have {usual}; official "
            "VQA annotations give every question the same number. Fix or re-download the file."
        )
