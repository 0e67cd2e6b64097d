"""Changing-priors splits: a VQA-style set re-split the way VQA-CP was built from VQA v2.

Per question type, the answers (`multiple_choice_answer`, normalised) are ranked by frequency
and every other one is sent mostly to train, the rest mostly to test (`major` of an answer's
questions go to its side), so each question type's answer distribution differs between the
two splits: a model that answers from the question's wording alone does well on a hold-out of
train and collapses on test. Which half of the ranks leans to train is a seeded coin per
question type. Written in VQA-CP's file format (bare JSON lists, each entry with `coco_split`),
so `data.format=vqacp` prepares it as it prepares VQA-CP v2.

    python -m butd.preparation.changing_priors data/vqa2/raw data/mycp/raw   # any VQA v2-layout set

Each file is written atomically, and none replaces a file this command did not write (VQA-CP
v2's downloads, say) unless `--overwrite` says so (`butd.preparation.raw_files`).
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
from butd.errors import UserError
from butd.preparation.formats import read_entries
from butd.preparation.raw_files import RawFiles
from butd.vqa.answers import normalize_answer

#: VQA-CP v2's file names (`conf/data/vqacp2.yaml`)
VQACP2_QUESTIONS = {"train": "vqacp_v2_train_questions.json", "test": "vqacp_v2_test_questions.json"}
VQACP2_ANNOTATIONS = {"train": "vqacp_v2_train_annotations.json", "test": "vqacp_v2_test_annotations.json"}
#: every file the re-split writes
VQACP2_FILES = [*VQACP2_QUESTIONS.values(), *VQACP2_ANNOTATIONS.values()]
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


def write_changing_priors(
    source: Path,
    out: Path,
    *,
    seed: int = 0,
    major: float = 0.9,
    overwrite: bool = False,
    files: RawFiles | None = None,
) -> dict[str, int]:
    """Re-split the train and val files of a VQA v2-layout raw folder into VQA-CP files in `out`.

    Returns the number of questions of each new split. Refuses, before writing, to replace a file
    in `out` it did not write unless `overwrite`; `files`: the caller's writer for `out`.
    """
    source, out = Path(source), Path(out)
    files = files or RawFiles(
        out, command="the changing-priors re-split", replace=overwrite, flag="--overwrite"
    )
    files.check(VQACP2_FILES)
    if not 0.5 < major <= 1.0:
        raise UserError(f"major={major!r} is invalid; expected a share in (0.5, 1], e.g. 0.9")
    missing = [
        source / f[s]
        for s in COCO_SPLIT
        for f in (VQA2_QUESTIONS, VQA2_ANNOTATIONS)
        if not (source / f[s]).is_file()
    ]
    if missing:
        raise UserError(
            f"{missing[0]} does not exist: the source must be a raw folder with VQA v2's train and val "
            f"questions and annotations ({len(missing)} of the 4 files missing)"
        )
    questions, annotations = [], []
    for split, coco in COCO_SPLIT.items():
        for entries, names, key in (
            (questions, VQA2_QUESTIONS, "questions"),
            (annotations, VQA2_ANNOTATIONS, "annotations"),
        ):
            entries += [dict(e, coco_split=coco) for e in read_entries(source / names[split], key, "vqa2")]
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, (qs, anns) in changing_priors_split(questions, annotations, seed=seed, major=major).items():
        files.write_text(VQACP2_QUESTIONS[split], json.dumps(qs))
        files.write_text(VQACP2_ANNOTATIONS[split], json.dumps(anns))
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
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace vqacp_v2_* files in OUT that this command did not write",
    )
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        raise SystemExit(f"error: source folder {args.source} does not exist (or is not a folder)")
    try:
        counts = write_changing_priors(
            args.source, args.out, seed=args.seed, major=args.major, overwrite=args.overwrite
        )
    except UserError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"wrote {args.out}: train {counts['train']:,} questions, test {counts['test']:,}")


if __name__ == "__main__":
    main()
