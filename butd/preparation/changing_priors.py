"""Changing-priors splits: a VQA-style set re-split the way VQA-CP was built from VQA v2.

Per question type, the answers (`multiple_choice_answer`, normalised) are ranked by frequency
and every other one is sent mostly to train, the rest mostly to test (`major` of an answer's
questions go to its side), so each question type's answer distribution differs between the
two splits: a model that answers from the question's wording alone does well on a hold-out of
train and collapses on test. Which half of the ranks leans to train is a seeded coin per
question type. Written in VQA-CP's file format (bare JSON lists, each entry with `coco_split`),
so `data.format=vqacp` prepares it as it prepares VQA-CP v2.

    python -m butd.preparation.changing_priors data/vqa2/raw data/mycp/raw   # any VQA v2-layout set
"""

from __future__ import annotations

import argparse
import json
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from butd.config.data import VQA2_ANNOTATIONS, VQA2_QUESTIONS
from butd.data.answers import normalize_answer
from butd.preparation.formats import read_entries

#: VQA-CP v2's file names (`conf/data/vqacp2.yaml`)
VQACP2_QUESTIONS = {"train": "vqacp_v2_train_questions.json", "test": "vqacp_v2_test_questions.json"}
VQACP2_ANNOTATIONS = {"train": "vqacp_v2_train_annotations.json", "test": "vqacp_v2_test_annotations.json"}
#: the VQA v2 split whose images a question uses -> its `coco_split`
COCO_SPLIT = {"train": "train2014", "val": "val2014"}


def train_leaning_answers(annotations: list[dict[str, Any]], *, seed: int) -> dict[str, set[str]]:
    """Per question type, the answers whose questions go mostly to train."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for a in annotations:
        counts[a["question_type"]][normalize_answer(a["multiple_choice_answer"])] += 1
    out = {}
    for qtype, tally in counts.items():
        ranked = sorted(tally, key=lambda ans: (-tally[ans], ans))
        coin = np.random.default_rng([seed, zlib.crc32(qtype.encode())]).integers(2)
        out[qtype] = {ans for rank, ans in enumerate(ranked) if rank % 2 == coin}
    return out


def changing_priors_split(
    questions: list[dict[str, Any]], annotations: list[dict[str, Any]], *, seed: int = 0, major: float = 0.9
) -> dict[str, tuple[list[dict], list[dict]]]:
    """{"train": (questions, annotations), "test": (...)}; entries keep their fields (and `coco_split`)."""
    if not 0.5 < major <= 1.0:
        raise ValueError(f"major={major!r} is invalid; expected a share in (0.5, 1]")
    leaning = train_leaning_answers(annotations, seed=seed)
    by_qid = {a["question_id"]: a for a in annotations}
    draw = np.random.default_rng([seed, 1]).random(len(questions))
    out: dict[str, tuple[list[dict], list[dict]]] = {"train": ([], []), "test": ([], [])}
    for q, u in zip(questions, draw, strict=True):
        a = by_qid[q["question_id"]]
        to_train = normalize_answer(a["multiple_choice_answer"]) in leaning[a["question_type"]]
        side = "train" if (u < major) == to_train else "test"
        out[side][0].append(q)
        out[side][1].append(a)
    return out


def write_changing_priors(source: Path, out: Path, *, seed: int = 0, major: float = 0.9) -> dict[str, int]:
    """Re-split the train and val files of a VQA v2-layout raw folder into VQA-CP files in `out`.

    Returns the number of questions of each new split.
    """
    questions, annotations = [], []
    for split, coco in COCO_SPLIT.items():
        for entries, files, key in (
            (questions, VQA2_QUESTIONS, "questions"),
            (annotations, VQA2_ANNOTATIONS, "annotations"),
        ):
            entries += [dict(e, coco_split=coco) for e in read_entries(source / files[split], key, "vqa2")]
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, (qs, anns) in changing_priors_split(questions, annotations, seed=seed, major=major).items():
        (out / VQACP2_QUESTIONS[split]).write_text(json.dumps(qs), encoding="utf-8")
        (out / VQACP2_ANNOTATIONS[split]).write_text(json.dumps(anns), encoding="utf-8")
        counts[split] = len(qs)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "source", type=Path, help="raw folder with VQA v2's train/val question and annotation files"
    )
    parser.add_argument("out", type=Path, help="folder for the vqacp_v2_{train,test}_*.json files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--major", type=float, default=0.9, help="share of an answer's questions on its side")
    args = parser.parse_args(argv)
    counts = write_changing_priors(args.source, args.out, seed=args.seed, major=args.major)
    print(f"wrote {args.out}: train {counts['train']:,} questions, test {counts['test']:,}")


if __name__ == "__main__":
    main()
