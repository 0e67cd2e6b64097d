"""Raw question and annotation layouts: each format reads its files into VQA v2's entry dicts.

A data set in another VQA-style layout is a reader here plus a data config (`data.format`),
not a fork of prepare. Every reader returns lists of dicts with VQA v2's fields (questions:
`question_id`, `image_id`, `question`; annotations: `question_id`, `image_id`, `question_type`,
`answer_type`, `answers`, `multiple_choice_answer`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from butd.cache.manifest import CacheError
from butd.config.data import DATA_FORMATS
from butd.preparation.inputs import check_annotations, check_questions

#: VQA-CP's `coco_split` values: the COCO split whose features hold the image
COCO_SPLITS = ("train2014", "val2014")


def _load(path: Path) -> Any:
    raw = path.read_bytes()
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise CacheError(
            f"{path}:{line}: byte {err.start:,} ({raw[err.start : err.start + 1]!r}) is not UTF-8 "
            f"({err.reason}); official VQA files are UTF-8. A damaged download? Fix or re-download it"
        ) from None
    except json.JSONDecodeError as err:
        raise CacheError(f"{path} is not valid JSON: {err}") from err


def _refuse_gqa(path: Path, content: Any) -> None:
    """One line naming GQA's layout (an object of questions keyed by id) when that is what was found."""
    if isinstance(content, dict) and content:
        first = next(iter(content.values()))
        if isinstance(first, dict) and "imageId" in first:
            raise CacheError(
                f"{path} is a GQA questions file (an object keyed by question id, with imageId), not a "
                "VQA file; use data=gqa for it (or data.format=gqa)"
            )


@DATA_FORMATS.implements("vqa2")
def _vqa2(path: Path, key: str) -> list[dict[str, Any]]:
    """`{"questions": [...]}` / `{"annotations": [...]}`, the official VQA v1/v2 files."""
    content = _load(path)
    _refuse_gqa(path, content)
    if isinstance(content, list):
        raise CacheError(
            f"{path} is a bare JSON list, not VQA v2's {{'{key}': [...]}}: a VQA-CP file? "
            "Use data=vqacp2, or set data.format=vqacp."
        )
    if not isinstance(content, dict) or key not in content:
        raise CacheError(f"{path} has no '{key}' list; is it an official VQA v2 file?")
    return content[key]


@DATA_FORMATS.implements("vqacp")
def _vqacp(path: Path, key: str) -> list[dict[str, Any]]:
    """A bare list whose every entry names its image's COCO split (`coco_split`), VQA-CP's layout."""
    content = _load(path)
    _refuse_gqa(path, content)
    if isinstance(content, dict):
        raise CacheError(
            f"{path} is a JSON object with keys {sorted(content)[:4]}, not a bare list as VQA-CP's files "
            "are: a VQA v2 file? Use data=vqa2 (or set data.format=vqa2), or point data.questions / "
            "data.annotations at the vqacp_v2_*.json files."
        )
    if not isinstance(content, list):
        raise CacheError(f"{path} holds a {type(content).__name__}; expected a list of {key}")
    for i, entry in enumerate(content):
        split = entry.get("coco_split") if isinstance(entry, dict) else None
        if split not in COCO_SPLITS:
            what = "has no 'coco_split'" if split is None else f"has coco_split={split!r}"
            qid = entry.get("question_id") if isinstance(entry, dict) else "?"
            raise CacheError(
                f"{path}: entry {i} (question_id {qid}) {what}; every VQA-CP {key[:-1]} names "
                f"its image's COCO split, "
                f"one of {list(COCO_SPLITS)}. "
                "Is the file damaged or of another release? Re-download it."
            )
    return content


def read_entries(path: Path, key: str, fmt: str) -> list[dict[str, Any]]:
    """The question or annotation entries (`key`: "questions" or "annotations") of a raw file,
    checked where they enter (`butd.preparation.inputs`: ids, text, answer counts)."""
    entries = DATA_FORMATS.implementation(fmt)(path, key)
    {"questions": check_questions, "annotations": check_annotations}[key](path, entries)
    return entries
