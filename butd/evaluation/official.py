"""The official VQA evaluation of a results file: overall, per answer type, per question type.

As the official evaluation code (HEAD a013f00) reports it: the per-question accuracy
(`butd.vqa.official.question_accuracy`) averaged in percent, the aggregates rounded to 2
decimals, the per-question accuracy unrounded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from butd.vqa.official import ResultsError, question_accuracy

#: decimals the official code keeps for the aggregates it reports
DECIMALS = 2


def _mean_percent(values: list[float], decimals: int) -> float:
    return round(100 * float(sum(values)) / len(values), decimals)


def _index_annotations(annotations: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Mapping]:
    anns = annotations.get("annotations") if isinstance(annotations, Mapping) else annotations
    if not isinstance(anns, list):
        raise ResultsError(
            "annotations: expected the official annotation file's content (an 'annotations' list)"
        )
    for i, a in enumerate(anns):
        missing = [k for k in ("question_id", "answers", "question_type", "answer_type") if k not in a]
        if missing:
            raise ResultsError(f"annotations[{i}] lacks {missing}; is it an official VQA v2 annotation file?")
    return anns


def check_results(results: Any, question_ids: Iterable[int]) -> dict[int, str]:
    """`{question_id: answer}` from a results list, or a ResultsError saying what is wrong.

    The official code refuses results that miss a question or name one the annotations lack;
    a question answered twice is refused here too (the official code would silently keep
    the last answer).
    """
    if not isinstance(results, list):
        raise ResultsError(
            f"results: expected a list of {{question_id, answer}}, got {type(results).__name__}"
        )
    answers: dict[int, str] = {}
    duplicated: list[int] = []
    for i, r in enumerate(results):
        if not isinstance(r, Mapping) or "question_id" not in r or "answer" not in r:
            raise ResultsError(f"results[{i}] = {r!r}: each entry needs 'question_id' and 'answer'")
        if not isinstance(r["answer"], str):
            raise ResultsError(
                f"results[{i}]: answer {r['answer']!r} of question {r['question_id']} is not a string"
            )
        qid = int(r["question_id"])
        if qid in answers:
            duplicated.append(qid)
        answers[qid] = r["answer"]
    wanted = list(question_ids)
    missing = [q for q in wanted if q not in answers]
    unknown = sorted(set(answers) - set(wanted))
    problems = []
    for what, ids in (("missing", missing), ("not in the annotations", unknown), ("duplicated", duplicated)):
        if ids:
            shown = ", ".join(str(q) for q in list(dict.fromkeys(ids))[:5])
            problems.append(f"{len(ids)} question ids {what} (e.g. {shown})")
    if problems:
        raise ResultsError(
            f"results do not answer the {len(wanted)} annotated questions exactly once: "
            + "; ".join(problems)
            + ". The official evaluation refuses such results: answer every question of the split "
            "once (python -m butd.predict writes such a file)."
        )
    return answers


def vqa_eval(
    annotations: Mapping[str, Any],
    questions: Mapping[str, Any] | None,
    results: list[Mapping[str, Any]],
    *,
    decimals: int = DECIMALS,
) -> dict[str, Any]:
    """The official evaluation of `results` on the questions of `annotations`.

    annotations, questions: contents of the official JSON files (questions may be None; when
    given, every annotated question must be in it). results: `[{"question_id", "answer"}]`.
    Returns `overall`, `perAnswerType`, `perQuestionType` (percent, rounded to `decimals`,
    keys in order of first appearance) and `perQuestion` ({question_id: percent}, unrounded).
    """
    anns = _index_annotations(annotations)
    if questions is not None:
        qs = questions.get("questions") if isinstance(questions, Mapping) else None
        if not isinstance(qs, list):
            raise ResultsError(
                "questions: expected the official question file's content (a 'questions' list)"
            )
        known = {int(q["question_id"]) for q in qs}
        orphans = [a["question_id"] for a in anns if int(a["question_id"]) not in known]
        if orphans:
            raise ResultsError(
                f"{len(orphans)} annotated questions are not in the questions file (e.g. {orphans[0]}); "
                "do the two files belong to the same split?"
            )
    ids = [int(a["question_id"]) for a in anns]
    repeated = [q for q, n in Counter(ids).items() if n > 1]
    if repeated:
        raise ResultsError(f"the annotations list question ids more than once, e.g. {repeated[0]}")
    answers = check_results(results, ids)

    per_question: dict[int, float] = {}
    all_acc: list[float] = []
    by_qtype: dict[str, list[float]] = {}
    by_atype: dict[str, list[float]] = {}
    for qid, ann in zip(ids, anns, strict=True):
        acc = question_accuracy(ann["answers"], answers[qid])
        all_acc.append(acc)
        by_qtype.setdefault(ann["question_type"], []).append(acc)
        by_atype.setdefault(ann["answer_type"], []).append(acc)
        per_question[qid] = 100 * acc
    return {
        "overall": _mean_percent(all_acc, decimals),
        "perAnswerType": {k: _mean_percent(v, decimals) for k, v in by_atype.items()},
        "perQuestionType": {k: _mean_percent(v, decimals) for k, v in by_qtype.items()},
        "perQuestion": per_question,
    }
