"""Visual Genome question-answer pairs as extra training questions (`data.extra_train=[vg]`).

The paper (Teney et al. 2018, Table 1) adds Visual Genome's QA pairs on COCO images to the
training questions (62.48 without, 63.15 with). The v1.2 files are read here:

- `question_answers.json`: a list of images, each `{"id" or "image_id", "qas": [{"qa_id",
  "image_id", "question", "answer", ...}]}`, `image_id` being Visual Genome's own id;
- `image_data.json`: a list of `{"image_id", "coco_id", ...}`, `coco_id` null (or absent) for
  images that are not in COCO.

A pair is kept when its image is a COCO image of `data.vg.image_splits` (train by default: a pair
on a val2014 image would train on the images validation scores), its normalised answer is in the
answer vocabulary, and (checked later, when the features are converted) its image has features.
Every pair dropped is counted under its reason, never an error for the whole file. Questions
longer than `data.max_question_len` are truncated as VQA's are, not dropped.

A kept pair becomes a VQA v2 question and annotation whose `answers` hold the VG answer
`data.vg.answer_count` times, so the reference's soft score turns it into 0.3 (1 annotator of
10) up to 1.0 (4 or more). Never imports torch.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from butd.errors import UserError
from butd.preparation.inputs import CONTROL
from butd.vqa.answers import normalize_answer

log = logging.getLogger(__name__)

#: why a pair is dropped, in the order the checks run; each is a count in the cache manifest
DROP_REASONS: dict[str, str] = {
    "duplicate_qa_id": "their qa_id is shared with another pair (which answer is whose is unknown)",
    "no_coco_id": "their image is not a COCO image (no coco_id in image_data.json)",
    "held_out_image": "their COCO image belongs to a split not in data.vg.image_splits (e.g. val2014)",
    "image_in_no_split": "their COCO image is in no split's questions read here",
    "answer_not_in_vocabulary": "their normalised answer is not in the answer vocabulary",
    "image_without_features": "their image has no features in data.features",
}
#: the question type of a VG question whose words start with none of the training types
OTHER_TYPE = "none of the above"


class VisualGenomeError(UserError):
    """A Visual Genome file that is not in the v1.2 layout; the message names the field expected."""


@dataclass
class VGSelection:
    """The kept pairs as VQA v2 entries, and how many pairs were read and dropped, by reason."""

    questions: list[dict[str, Any]]
    annotations: list[dict[str, Any]]
    read: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))

    @property
    def kept(self) -> int:
        return len(self.questions)

    def counts(self) -> dict[str, Any]:
        """What the cache manifest records (`counts.visual_genome`)."""
        return {"pairs": self.read, "kept": self.kept, "dropped": dict(self.dropped)}

    def report(self) -> None:
        """One log line per fact: pairs read, kept, and each reason that dropped some."""
        log.info("visual genome: %d question-answer pairs read", self.read)
        for reason, n in self.dropped.items():
            if n:
                log.info("visual genome: %d pairs dropped: %s", n, DROP_REASONS[reason])
        log.info("visual genome: %d pairs kept as training questions (split vg)", self.kept)


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VisualGenomeError(f"{path} is not valid UTF-8 JSON ({err}); re-download it") from None


def _layout_error(path: Path, where: str, expected: str) -> VisualGenomeError:
    return VisualGenomeError(
        f"{path}: {where}; expected Visual Genome v1.2's layout, {expected}. "
        "Is it another release or another file? Re-download it (scripts/download_vqa2.sh vg)"
    )


def read_coco_ids(path: Path) -> dict[int, int | None]:
    """Visual Genome image id -> COCO image id (None for images not in COCO) from image_data.json."""
    content = _load(path)
    expected = "a list of images each with 'image_id' and 'coco_id' (null when not a COCO image)"
    if not isinstance(content, list):
        raise _layout_error(path, f"the file holds a {type(content).__name__}", expected)
    out: dict[int, int | None] = {}
    for i, image in enumerate(content):
        if not isinstance(image, dict) or not isinstance(image.get("image_id"), int):
            raise _layout_error(path, f"entry {i} has no integer 'image_id'", expected)
        coco = image.get("coco_id")
        out[image["image_id"]] = coco if isinstance(coco, int) and not isinstance(coco, bool) else None
    return out


def read_pairs(path: Path) -> list[dict[str, Any]]:
    """Every QA pair of question_answers.json, checked for the fields butd reads."""
    content = _load(path)
    expected = "a list of images each with 'qas', a list of {'qa_id', 'image_id', 'question', 'answer'}"
    if not isinstance(content, list):
        raise _layout_error(path, f"the file holds a {type(content).__name__}", expected)
    pairs: list[dict[str, Any]] = []
    for i, image in enumerate(content):
        if not isinstance(image, dict) or not isinstance(image.get("qas"), list):
            raise _layout_error(path, f"entry {i} has no 'qas' list", expected)
        for j, qa in enumerate(image["qas"]):
            for key, kind in (("qa_id", int), ("image_id", int), ("question", str), ("answer", str)):
                if not isinstance(qa, dict) or not isinstance(qa.get(key), kind) or isinstance(qa[key], bool):
                    raise _layout_error(path, f"entry {i}, qas[{j}] has no {kind.__name__} {key!r}", expected)
            for key in ("question", "answer"):  # as VQA's questions are checked (butd.preparation.inputs)
                bad = CONTROL.search(qa[key])
                if bad:
                    raise VisualGenomeError(
                        f"{path}: entry {i}, qas[{j}] (qa_id {qa['qa_id']}): the {key} holds the control "
                        f"character {bad.group()!r} at position {bad.start()} ({qa[key][:60]!r}); a damaged "
                        "file? Fix or re-download it (scripts/download_vqa2.sh vg)"
                    )
            pairs.append(qa)
    return pairs


def question_type(question: str, types: set[str]) -> str:
    """The longest VQA question type the question starts with, as VQA assigns them by prefix.

    `types`: the training annotations' question types; OTHER_TYPE when none fits."""
    words = question.lower().replace("?", " ").replace(",", " ").split()
    for n in range(min(len(words), 6), 0, -1):
        prefix = " ".join(words[:n])
        if prefix in types:
            return prefix
    return OTHER_TYPE


def answer_type(answer: str) -> str:
    """VQA's answer type of a normalised answer: yes/no, number (digits), other."""
    if answer in ("yes", "no"):
        return "yes/no"
    return "number" if answer.isdigit() else "other"


def select_pairs(
    *,
    questions_path: Path,
    images_path: Path,
    split_images: dict[str, set[int]],
    image_splits: list[str],
    answers: list[str],
    answer_count: int,
    question_types: set[str],
) -> VGSelection:
    """The Visual Genome pairs usable as training questions, as VQA v2 question/annotation entries.

    `split_images`: split -> COCO image ids its questions use (every split read by prepare, the
    hold-out included); a pair may use the images of `image_splits` only. The image-features
    check comes later (`butd.preparation.build`), which adds to `dropped`.
    """
    coco_of = read_coco_ids(images_path)
    pairs = read_pairs(questions_path)
    allowed = set().union(*(split_images[s] for s in image_splits))
    held_out = set().union(*(ids for s, ids in split_images.items() if s not in image_splits))
    known = set(answers)
    out = VGSelection(questions=[], annotations=[], read=len(pairs))
    dropped: Counter[str] = Counter()
    shared = {qid for qid, n in Counter(qa["qa_id"] for qa in pairs).items() if n > 1}
    for qa in pairs:
        if qa["qa_id"] in shared:  # every pair of the id: which answer belongs to which question is unknown
            dropped["duplicate_qa_id"] += 1
            continue
        coco = coco_of.get(qa["image_id"])
        if coco is None:
            dropped["no_coco_id"] += 1
            continue
        if coco in held_out:
            dropped["held_out_image"] += 1
            continue
        if coco not in allowed:
            dropped["image_in_no_split"] += 1
            continue
        answer = normalize_answer(qa["answer"])
        if answer not in known:
            dropped["answer_not_in_vocabulary"] += 1
            continue
        out.questions.append({"question_id": qa["qa_id"], "image_id": coco, "question": qa["question"]})
        out.annotations.append(
            {
                "question_id": qa["qa_id"],
                "image_id": coco,
                "question_type": question_type(qa["question"], question_types),
                "answer_type": answer_type(answer),
                "multiple_choice_answer": answer,
                # the normalised answer, so the soft score counts it whatever
                # data.normalize_annotator_answers says
                "answers": [{"answer": answer, "answer_id": k + 1} for k in range(answer_count)],
            }
        )
    out.dropped.update(dropped)
    return out
