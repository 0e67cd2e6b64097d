"""The synthetic set's scenes written in GQA's formats (`data=synthetic_gqa`).

The scenes, questions and features are those of `butd.preparation.synthetic` (same spec, same
draws); only the files differ, so `data=gqa`'s reader, feature views and metrics run on them:

- `questions1.2/{train,val,testdev}_balanced_questions.json` and `{val,testdev}_all_questions.json`,
  `train_all_questions/train_all_questions_{0,1}.json` (the release's chunked layout): objects
  keyed by a string question id (9 digits, zero-padded). Every fourth question of an image is in
  the `all` files only (`isBalanced: false`). Types: attribute questions are structural `query`,
  semantic `attr`, detailed `queryColor`/`queryShape`/`querySize`; counting questions (GQA has
  none) `query`/`obj`/`count`; existence questions `verify`/`obj`/`exist`. The `semantic` program
  is select, one filter per attribute word of the referent, then query/count/exist; `entailed`
  lists the image's other questions of the same structural type; `groups.global` is the asked
  attribute (`count` for counting, none for existence);
- `questions1.2/submission_all_questions.json`: the testdev questions without their answers;
- `eval/val_choices.json`: `valid` is every value of the asked attribute (yes/no, the counts),
  `plausible` the same without one wrong value;
- `objects/gqa_objects_{0,1}.h5` (`features` [n, K, D] float32, `bboxes` [n, K, 4], the rows past
  objectsNum zero) and `objects/gqa_objects_info.json`; the val images have the ids "nN", as
  GQA's images not from Visual Genome do;
- the GloVe file of the synthetic set.

It is a format exercise: the entailments and choices follow from the templates, not from GQA's
question engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from butd.preparation.raw_files import RawFiles
from butd.preparation.synthetic import (
    COLORS,
    SHAPES,
    SIZES,
    Question,
    Scene,
    SyntheticSpec,
    _attribute_codes,
    _name,
    _rng,
    _write_glove,
    sample_questions,
    sample_scenes,
    sample_test_scenes,
    scene_features,
)

#: the object files the generator writes (`data.gqa.objects_files` of `data=synthetic_gqa`)
OBJECT_FILES = 2
QUESTIONS_DIR = "questions1.2"
_VALUES = {"color": COLORS, "shape": SHAPES, "size": SIZES}


def _image_key(scene: Scene) -> str:
    return f"n{scene.image_id}" if scene.split == "val2014" else str(scene.image_id)


def _kind(q: Question) -> tuple[str, str, str, str | None]:
    """structural, semantic, detailed type and global group of a templated question."""
    if q.answer_type == "yes/no":
        return "verify", "obj", "exist", None
    if q.answer_type == "number":
        return "query", "obj", "count", "count"
    attribute = q.text.split()[1]  # "what color is the ..." -> color
    return "query", "attr", "query" + attribute.capitalize(), attribute


def _program(q: Question, detailed: str) -> list[dict[str, Any]]:
    words = q.text.rstrip("?").split()
    if detailed == "exist":
        referent = words[3:] if words[2] in ("a", "any") else words[2:]
        last = ("exist", "?")
    elif detailed == "count":
        referent, last = words[2:-2], ("count", "")  # how many <size> <shapes> are there
    else:
        referent, last = words[4:], ("query", detailed[5:].lower())
    if not referent:
        referent = ["object"]
    ops = [{"operation": "select", "argument": referent[-1], "dependencies": []}]
    ops += [{"operation": "filter", "argument": w, "dependencies": [i]} for i, w in enumerate(referent[:-1])]
    ops.append({"operation": last[0], "argument": last[1], "dependencies": [len(ops) - 1]})
    return ops


def _valid(q: Question, detailed: str, spec: SyntheticSpec) -> list[str]:
    if detailed == "exist":
        return ["no", "yes"]
    if detailed == "count":
        return [str(n) for n in range(spec.objects_range[1] + 1)]
    return sorted(_VALUES[detailed[5:].lower()])


def _entries(questions: list[Question], scenes: list[Scene], spec: SyntheticSpec) -> tuple[dict, dict]:
    """All questions as GQA entries by key, and their choices."""
    key_of_image = {s.image_id: _image_key(s) for s in scenes}
    entries: dict[str, dict[str, Any]] = {}
    choices: dict[str, dict[str, list[str]]] = {}
    kinds = {q.question_id: _kind(q) for q in questions}
    by_image: dict[int, list[Question]] = {}
    for q in questions:
        by_image.setdefault(q.image_id, []).append(q)
    for q in questions:
        structural, semantic, detailed, group = kinds[q.question_id]
        key = f"{q.question_id:09d}"
        same = [
            f"{o.question_id:09d}"
            for o in by_image[q.image_id]
            if o.question_id != q.question_id and kinds[o.question_id][0] == structural
        ]
        entries[key] = {
            "imageId": key_of_image[q.image_id],
            "question": q.text[0].upper() + q.text[1:],
            "answer": q.answer,
            "fullAnswer": f"The answer is {q.answer}.",
            "isBalanced": q.question_id % 1000 % 4 != 3,
            "types": {"structural": structural, "semantic": semantic, "detailed": detailed},
            "entailed": same,
            "equivalent": [key],
            "groups": {"global": group, "local": f"{detailed}-{q.text.split()[-1].rstrip('?')}"},
            "semantic": _program(q, detailed),
            "semanticStr": "",
            "annotations": {"question": {}, "answer": {}, "fullAnswer": {}},
        }
        valid = _valid(q, detailed, spec)
        wrong = [a for a in valid if a != q.answer]
        choices[key] = {"valid": valid, "plausible": [a for a in valid if not wrong or a != wrong[-1]]}
    return entries, choices


def _write(files: RawFiles, path: Path, obj: Any) -> None:
    files.write_text(_name(files, path), json.dumps(obj))


def planned_gqa_files(spec: SyntheticSpec) -> list[str]:
    """The files `generate_gqa` writes for `spec`, relative to the raw folder."""
    names = [f"{QUESTIONS_DIR}/{s}_balanced_questions.json" for s in ("train", "val", "testdev")]
    names += [f"{QUESTIONS_DIR}/train_all_questions/train_all_questions_{c}.json" for c in range(2)]
    names += [f"{QUESTIONS_DIR}/{s}_all_questions.json" for s in ("val", "testdev")]
    names += [f"{QUESTIONS_DIR}/submission_all_questions.json", "eval/val_choices.json"]
    names += [f"objects/gqa_objects_{f}.h5" for f in range(OBJECT_FILES)] + ["objects/gqa_objects_info.json"]
    return [*names, f"glove/glove.6B.{spec.glove_dim}d.txt"]


def _write_objects(
    files: RawFiles, raw_dir: Path, scenes: list[Scene], spec: SyntheticSpec
) -> dict[str, Path]:
    """The object files and their info: each image's boxes in a shuffled row of one of the files."""
    codes = _attribute_codes(spec)
    order = _rng(spec, 13).permutation(len(scenes))
    parts = np.array_split(order, OBJECT_FILES)
    info: dict[str, dict[str, int]] = {}
    paths = {}
    k, d = spec.num_boxes, spec.feature_dim
    for f, rows in enumerate(parts):
        feats = np.zeros((len(rows), k, d), np.float32)
        boxes = np.zeros((len(rows), k, 4), np.float32)
        for r, i in enumerate(rows.tolist()):
            s = scenes[i]
            n = len(s.box_object)
            feats[r, :n] = scene_features(s, codes, spec)
            boxes[r, :n] = s.boxes
            info[_image_key(s)] = {"width": s.width, "height": s.height, "objectsNum": n, "file": f, "idx": r}
        path = raw_dir / "objects" / f"gqa_objects_{f}.h5"
        with files.open(_name(files, path), "w+b") as fh, h5py.File(fh, "w") as h5:
            h5.create_dataset("features", data=feats)
            h5.create_dataset("bboxes", data=boxes)
        paths[f"objects_{f}"] = path
    paths["objects_info"] = raw_dir / "objects" / "gqa_objects_info.json"
    _write(files, paths["objects_info"], info)
    return paths


def generate_gqa(
    raw_dir: Path, spec: SyntheticSpec, *, progress: bool = False, files: RawFiles | None = None
) -> dict[str, Path]:
    """Write the synthetic set in GQA's formats into raw_dir; same spec, same bytes. Every file is
    written atomically and never over one butd did not write (`butd.preparation.raw_files`)."""
    del progress  # small files: no bar
    raw_dir = Path(raw_dir)
    files = files or RawFiles(raw_dir, command="the synthetic generator")
    files.check(planned_gqa_files(spec))
    scenes = sample_scenes(spec)
    test_scenes = sample_test_scenes(spec)
    questions = sample_questions(scenes, spec)
    test_questions = sample_questions(test_scenes, spec, stream=11)
    split_of = {s.image_id: ("train" if s.split == "train2014" else "val") for s in scenes}
    entries, choices = _entries(questions, scenes, spec)
    test_entries, _ = _entries(test_questions, test_scenes, spec)
    qdir = raw_dir / QUESTIONS_DIR
    paths: dict[str, Path] = {}
    by_split: dict[str, dict[str, dict]] = {"train": {}, "val": {}, "testdev": test_entries}
    for q in questions:
        key = f"{q.question_id:09d}"
        by_split[split_of[q.image_id]][key] = entries[key]
    for split, all_entries in by_split.items():
        balanced = {k: e for k, e in all_entries.items() if e["isBalanced"]}
        paths[f"{split}_balanced"] = qdir / f"{split}_balanced_questions.json"
        _write(files, paths[f"{split}_balanced"], balanced)
        if split == "train":  # the release splits train_all into chunks in a folder
            keys = list(all_entries)
            for c, chunk in enumerate(np.array_split(np.arange(len(keys)), 2)):
                path = qdir / "train_all_questions" / f"train_all_questions_{c}.json"
                _write(files, path, {keys[i]: all_entries[keys[i]] for i in chunk.tolist()})
                paths[f"train_all_{c}"] = path
        else:
            paths[f"{split}_all"] = qdir / f"{split}_all_questions.json"
            _write(files, paths[f"{split}_all"], all_entries)
    # the questions a submission answers, without their answers (GQA's test files have none)
    paths["submission"] = qdir / "submission_all_questions.json"
    hidden = ("answer", "fullAnswer")
    _write(
        files,
        paths["submission"],
        {k: {f: v for f, v in e.items() if f not in hidden} for k, e in test_entries.items()},
    )
    paths["val_choices"] = raw_dir / "eval" / "val_choices.json"
    _write(files, paths["val_choices"], {k: choices[k] for k in by_split["val"]})
    paths.update(_write_objects(files, raw_dir, scenes + test_scenes, spec))
    paths["glove"] = raw_dir / "glove" / f"glove.6B.{spec.glove_dim}d.txt"
    _write_glove(files, paths["glove"], questions + test_questions, spec)
    return paths
