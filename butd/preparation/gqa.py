"""GQA's raw files -> the processed cache (`data.format=gqa`, `conf/data/gqa.yaml`).

Questions: `{split}_{balanced,all}_questions.json`, one JSON object keyed by question id (a
string) whose entries carry `imageId`, `question`, `answer` (absent in the test files), `types`
(`structural`, `semantic`, `detailed`), `entailed`, `groups` (`global`, `local`), `semantic` (the
program) and `isBalanced`; the train `all` questions come as a folder of chunks
(`train_all_questions/train_all_questions_{0..9}.json`), read as one file. One answer per
question: the target is that answer with score 1 (hard targets) and its official accuracy 1,
so `val/score` and `val/vqa_acc` are exact-match accuracies over the prepared questions. The
cache's `question_id` is each question's position in its raw file; GQA's id is kept as
`gqa/key`. The answer vocabulary is the answers of `data.answer_splits` (train) given for at least
`data.min_answer_count` questions, most frequent first.

Object features, read in place: `objects/gqa_objects_{0..15}.h5` hold `features` [n, 100, 2048]
and `bboxes` [n, 100, 4] (x1, y1, x2, y2 in pixels) per image row, and `gqa_objects_info.json`
maps each imageId to `{width, height, objectsNum, file, idx}`: the file number and row, the first
objectsNum boxes real. Each split file's `images/features` and `images/boxes` are HDF5 virtual
datasets over those files laid end to end ([rows x 100, ...], as `butd.preparation.linked` does
for another cache), `images/box_start` points at an image's first box and `images/counts` is its
objectsNum, so the boxes are adaptive and masked like the adaptive VQA boxes. Only the box
geometry (`spatial`, six floats per box) is written, for the split's own images. The image ids
are integers: the imageId itself, or 10**10 + N for the ids "nN" of the images not from Visual
Genome.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h5py
import numpy as np

from butd.cache.manifest import CacheError, split_file
from butd.config.data import DATA_FORMATS, DataConfig
from butd.vqa.csr import csr_from_rows
from butd.vqa.gqa import OBJECT_VIEWS, GQATables, choices_table, csr_pairs, reasoning_steps
from butd.vqa.text import UnknownWordError, Vocabulary, load_glove

log = logging.getLogger(__name__)

#: offset of the image ids "nN" (GQA images not from Visual Genome): 10**10 + N
N_IMAGE_BASE = 10**10
#: per-box datasets of a split file that are views of the object files: ours -> theirs
LINKED = {ours.removeprefix("images/"): theirs for ours, theirs in OBJECT_VIEWS.items()}


def image_number(image_id: str, path: Path) -> int:
    """GQA's imageId (a string) as the cache's int64 image id."""
    text = str(image_id)
    if text.isdigit():
        return int(text)
    if text[:1] == "n" and text[1:].isdigit():
        return N_IMAGE_BASE + int(text[1:])
    raise CacheError(f"{path}: imageId {image_id!r} is neither a number nor 'n' and a number, as GQA's are")


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise CacheError(f"{path} is not UTF-8 ({err.reason}); a damaged download? Re-download it") from None
    except json.JSONDecodeError as err:
        raise CacheError(f"{path} is not valid JSON: {err}; a damaged download? Re-download it") from None


def read_questions(path: Path) -> dict[str, dict[str, Any]]:
    """The questions of one GQA file, or of a folder of chunks (`train_all_questions/`), by id."""
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise CacheError(f"{path} is a folder without .json chunks; expected GQA questions files in it")
    out: dict[str, dict[str, Any]] = {}
    for file in files:
        content = _load_json(file)
        check_gqa_layout(file, content)
        out.update(content)
    return out


def check_gqa_layout(path: Path, content: Any) -> None:
    """One line naming the format found when the file is not GQA's (a VQA v2 or VQA-CP file)."""
    if isinstance(content, list):
        raise CacheError(
            f"{path} is a bare JSON list (the VQA-CP layout), not GQA's object keyed by question id; "
            "use data=vqacp2 for it, or point data.questions at GQA's *_questions.json files"
        )
    if not isinstance(content, dict):
        raise CacheError(f"{path} holds a {type(content).__name__}; expected GQA's questions keyed by id")
    if "questions" in content or "annotations" in content:
        kind = "questions" if "questions" in content else "annotations"
        raise CacheError(
            f"{path} is a VQA v2 {kind} file ({{'{kind}': [...]}}), not GQA's questions keyed by id; "
            "use data=vqa2 for it, or point data.questions at GQA's *_questions.json files"
        )
    for key, entry in content.items():
        if not isinstance(entry, dict) or "imageId" not in entry or "question" not in entry:
            raise CacheError(
                f"{path}: question {key!r} has no imageId or question; is it a GQA questions file? "
                "Re-download it"
            )
        return  # the first entry tells the layout; the fields are read where they are used


@dataclass
class ObjectsIndex:
    """`gqa_objects_info.json` checked against the object files: where each image's boxes are."""

    files: list[Path]
    #: image rows per file and the boxes per row
    rows: list[int]
    num_boxes: int
    feature_dim: int
    #: the stored dtypes of `features` and `bboxes` (float32 in the release), kept by the views
    dtypes: dict[str, np.dtype] = field(default_factory=dict)
    #: image number -> (file, row, objectsNum, width, height)
    images: dict[int, tuple[int, int, int, float, float]] = field(default_factory=dict)
    without_boxes: list[str] = field(default_factory=list)

    def box_start(self, file: int, row: int) -> int:
        """The image's first box in the object files laid end to end."""
        return (sum(self.rows[:file]) + row) * self.num_boxes

    @property
    def total_boxes(self) -> int:
        return sum(self.rows) * self.num_boxes


def objects_files(cfg: DataConfig) -> list[Path]:
    pattern = str(cfg.gqa["objects"])
    return [cfg.raw_path / pattern.format(i) for i in range(int(cfg.gqa["objects_files"]))]


def read_objects(cfg: DataConfig) -> ObjectsIndex:
    """The objects info and the shapes of the object files; every bad entry named with its image."""
    info_path = cfg.raw_path / cfg.gqa["objects_info"]
    files = objects_files(cfg)
    rows, shapes = [], set()
    for path in files:
        try:
            with h5py.File(path, "r") as f:
                missing = [name for name in LINKED.values() if name not in f]
                if missing:
                    raise CacheError(
                        f"{path} has no dataset {missing[0]!r}; GQA's object files hold 'features' "
                        "[n, 100, 2048] and 'bboxes' [n, 100, 4]. A damaged download? Re-download it"
                    )
                feats, boxes = f["features"].shape, f["bboxes"].shape
                dtypes = {name: f[name].dtype for name in LINKED.values()}
        except OSError as err:
            raise CacheError(f"{path} is not a readable HDF5 file ({err}); re-download it") from None
        if len(feats) != 3 or boxes != (*feats[:2], 4):
            raise CacheError(
                f"{path}: features {feats} and bboxes {boxes} are not [n, K, D] and [n, K, 4] of one n and K"
            )
        rows.append(feats[0])
        shapes.add(feats[1:])
    if len(shapes) > 1:
        raise CacheError(
            f"the object files {[p.name for p in files]} differ in boxes x features: {sorted(shapes)}"
        )
    num_boxes, feature_dim = shapes.pop()
    index = ObjectsIndex(
        files=files, rows=rows, num_boxes=int(num_boxes), feature_dim=int(feature_dim), dtypes=dtypes
    )
    info = _load_json(info_path)
    if not isinstance(info, dict):
        raise CacheError(f"{info_path} holds a {type(info).__name__}; expected an object keyed by imageId")
    for image_id, entry in info.items():
        try:
            file, row, count = int(entry["file"]), int(entry["idx"]), int(entry["objectsNum"])
            width, height = float(entry["width"]), float(entry["height"])
        except (KeyError, TypeError, ValueError):
            raise CacheError(
                f"{info_path}: image {image_id}: entry {entry!r} lacks one of width, height, objectsNum, "
                "file, idx (integers)"
            ) from None
        if not 0 <= file < len(files):
            raise CacheError(
                f"{info_path}: image {image_id} points to file {file}, which does not exist "
                f"(data.gqa.objects_files={len(files)}: {files[0].name} .. {files[-1].name})"
            )
        if not 0 <= row < rows[file]:
            raise CacheError(
                f"{info_path}: image {image_id} points to row {row} of {files[file]}, "
                f"which has {rows[file]} rows"
            )
        if count > num_boxes:
            raise CacheError(
                f"{info_path}: image {image_id} has objectsNum={count}, more than the {num_boxes} boxes "
                f"per row of {files[file].name}"
            )
        if count < 1 or width <= 0 or height <= 0:
            index.without_boxes.append(str(image_id))
            continue
        index.images[image_number(image_id, info_path)] = (file, row, count, width, height)
    return index


@dataclass
class GQASplit:
    """One split's questions as read, in file order (the cache's question_id is the position)."""

    keys: list[str]
    entries: list[dict[str, Any]]
    image_id: np.ndarray


def _split(cfg: DataConfig, split: str) -> GQASplit:
    path = cfg.raw_path / cfg.questions[split]
    questions = read_questions(path)
    keys = list(questions)
    entries = [questions[k] for k in keys]
    for key, e in zip(keys, entries, strict=True):
        if not isinstance(e, dict) or not isinstance(e.get("question"), str) or "imageId" not in e:
            raise CacheError(
                f"{path}: question {key!r} has no imageId or no question text; GQA's entries carry both. "
                "A damaged download? Re-download it"
            )
    return GQASplit(keys, entries, np.array([image_number(e["imageId"], path) for e in entries], np.int64))


def _answer_type(answer: str) -> str:
    return "yes/no" if answer in ("yes", "no") else "other"


def split_questions(cfg: DataConfig, split: str, q: GQASplit, vocab: Vocabulary, answers: list[str]):
    """The fields of a GQA split's `SplitQuestions` (hard targets) and its GQA tables."""
    n = len(q.entries)
    try:
        tokens = np.array(
            [vocab.encode(e["question"], max_len=cfg.max_question_len) for e in q.entries], np.int32
        )
    except UnknownWordError as err:
        raise CacheError(
            f"a question of split '{split}' has the word {err.word!r}, which is not in the vocabulary "
            f"built from data.vocab_splits={cfg.vocab_splits}; set data.unknown_token=UNK"
        ) from None
    out = SimpleNamespace(
        question_id=np.arange(n, dtype=np.int64),
        image_id=q.image_id,
        tokens=tokens.reshape(n, cfg.max_question_len),
        text={"question": np.array([e["question"] for e in q.entries], dtype=object)},
        targets=None,
        accuracy=None,
    )
    annotated = all("answer" in e for e in q.entries) and n > 0
    types = [e.get("types") or {} for e in q.entries]
    ans = [str(e.get("answer", "")) for e in q.entries]
    if annotated:
        label_of = {a: i for i, a in enumerate(answers)}
        hard = csr_from_rows([{label_of[a]: 1.0} if a in label_of else {} for a in ans])
        out.targets, out.accuracy = hard, hard
        out.text["question_type"] = np.array([str(t.get("detailed", "")) for t in types], dtype=object)
        out.text["answer_type"] = np.array([_answer_type(a) for a in ans], dtype=object)
        out.text["multiple_choice_answer"] = np.array(ans, dtype=object)
        out.text["gt_answers"] = np.array(ans, dtype=object).reshape(n, 1)
    row_of = {k: i for i, k in enumerate(q.keys)}
    entailed = [
        np.array(sorted({row_of[str(x)] for x in e.get("entailed") or [] if str(x) in row_of}), np.int64)
        for e in q.entries
    ]
    tables = GQATables(
        question_id=out.question_id,
        key=np.array(q.keys, dtype=object),
        answer=np.array(ans, dtype=object),
        structural=np.array([str(t.get("structural", "")) for t in types], dtype=object),
        semantic=np.array([str(t.get("semantic", "")) for t in types], dtype=object),
        detailed=np.array([str(t.get("detailed", "")) for t in types], dtype=object),
        group=np.array([str((e.get("groups") or {}).get("global") or "") for e in q.entries], dtype=object),
        steps=np.array([reasoning_steps(e.get("semantic") or []) for e in q.entries], np.int64),
        balanced=np.array([bool(e.get("isBalanced", True)) for e in q.entries]),
        entailed=csr_pairs(entailed),
    )
    choices_file = (cfg.gqa.get("choices") or {}).get(split)
    if choices_file:
        choices = _load_json(cfg.raw_path / choices_file)
        tables.valid = choices_table(q.keys, choices, "valid", answers)
        tables.plausible = choices_table(q.keys, choices, "plausible", answers)
    return vars(out), tables


@DATA_FORMATS.implements("gqa")
def text_stage(cfg: DataConfig):
    """Questions -> vocabulary, answers, GloVe rows (and how many GloVe has), per split the fields
    of its `SplitQuestions`, and per split its GQA tables."""
    splits = {
        s: _split(cfg, s) for s in dict.fromkeys([*cfg.vocab_splits, *cfg.answer_splits, *cfg.prepare_splits])
    }
    words = Vocabulary()
    for s in cfg.vocab_splits:
        for e in splits[s].entries:
            words.add_question(e["question"])
    counts: Counter[str] = Counter()
    for s in cfg.answer_splits:
        missing = [k for k, e in zip(splits[s].keys, splits[s].entries, strict=True) if "answer" not in e]
        if missing:
            raise CacheError(
                f"{cfg.raw_path / cfg.questions[s]}: {len(missing):,} questions have no answer (e.g. "
                f"{missing[0]}); data.answer_splits must name answered splits (train)"
            )
        counts.update(str(e["answer"]) for e in splits[s].entries)
    answers = [
        a for a, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= cfg.min_answer_count
    ]
    if not answers:
        raise CacheError(f"no answer occurs {cfg.min_answer_count} times in {cfg.answer_splits}; lower it")
    vocab = Vocabulary(words.idx2word, unknown_token=cfg.unknown_token)
    if cfg.glove:
        glove, found = load_glove(cfg.raw_path / cfg.glove, vocab.idx2word, cfg.emb_dim)
    else:
        glove, found = np.zeros((len(vocab), cfg.emb_dim), np.float32), 0
    prepared, tables = {}, {}
    for s in cfg.prepare_splits:
        prepared[s], tables[s] = split_questions(cfg, s, splits[s], vocab, answers)
    return vocab, answers, glove, found, prepared, tables


class ObjectSplit:
    """One split file whose `images/` group views GQA's object files (what `build` uses of a writer:
    `h5`, `num_images`, `row_of`, `finish()`, `close()`)."""

    def __init__(self, path: Path, index: ObjectsIndex, images: np.ndarray) -> None:
        self.path = path
        self.h5 = h5py.File(path, "w")
        g = self.h5.create_group("images")
        total, k = index.total_boxes, index.num_boxes
        for ours, theirs in LINKED.items():
            width = index.feature_dim if ours == "features" else 4
            dtype = index.dtypes[theirs]
            layout = h5py.VirtualLayout(shape=(total, width), dtype=dtype)
            base = 0
            for src, n in zip(index.files, index.rows, strict=True):
                relative = os.path.relpath(src, path.parent)
                layout[base * k : (base + n) * k] = h5py.VirtualSource(
                    relative, theirs, shape=(n, k, width), dtype=dtype
                )
                base += n
            g.create_virtual_dataset(ours, layout, fillvalue=np.nan)
        # in the order of their boxes in the object files, as the stores read blocks of images
        have = [i for i in np.unique(images).tolist() if i in index.images]
        have = np.array(sorted(have, key=lambda i: index.box_start(*index.images[i][:2])), np.int64)
        where = [index.images[int(i)] for i in have]
        starts = np.array([index.box_start(f, r) for f, r, *_ in where], np.int64)
        counts = np.array([c for _, _, c, _, _ in where], np.int64)
        g.create_dataset("image_id", data=have)
        g.create_dataset("box_start", data=starts)
        g.create_dataset("counts", data=counts)
        g.create_dataset("size", data=np.array([(w, h) for *_, w, h in where], np.float32).reshape(-1, 2))
        # the geometry of the split's own boxes; the rows of other images stay unallocated (zero)
        chunk = (k * 16, 6)
        spatial = g.create_dataset("spatial", shape=(total, 6), dtype=np.float32, chunks=chunk, fillvalue=0)
        self._write_spatial(index, where, starts, spatial)
        self.num_images = len(have)
        self.row_of = {int(i): r for r, i in enumerate(have)}

    @staticmethod
    def _write_spatial(index: ObjectsIndex, where: list, starts: np.ndarray, spatial: h5py.Dataset) -> None:
        """x1/w, y1/h, x2/w, y2/h, bw/w, bh/h per real box, one object file at a time."""
        for f, path in enumerate(index.files):
            mine = [(i, r, c, w, h) for i, (ff, r, c, w, h) in enumerate(where) if ff == f]
            if not mine:
                continue
            with h5py.File(path, "r") as src:
                boxes = src["bboxes"][:]  # [n, K, 4]: a few MB per file, read once
                for i, r, c, w, h in mine:
                    b = boxes[r, :c].astype(np.float32)
                    scale = np.array([w, h, w, h], np.float32)
                    geo = np.concatenate([b / scale, (b[:, 2:] - b[:, :2]) / scale[:2]], axis=1)
                    start = int(starts[i])
                    spatial[start : start + c] = geo

    def finish(self) -> None:
        """Nothing to trim: the tables were written whole."""

    def close(self) -> None:
        self.h5.close()


def link_objects(
    cfg: DataConfig, root: Path, wanted: dict[str, np.ndarray]
) -> tuple[dict[str, ObjectSplit], ObjectsIndex]:
    """`{split}.h5.partial` files for the splits of `wanted` (split -> image ids), viewing the
    object files."""
    index = read_objects(cfg)
    if cfg.num_boxes != index.num_boxes:
        raise CacheError(
            f"data.num_boxes={cfg.num_boxes}, but the object files hold {index.num_boxes} boxes per image; "
            f"set data.num_boxes={index.num_boxes}"
        )
    if index.without_boxes:
        log.warning(
            "%d images of %s have objectsNum 0 (or no size) and count as without features, e.g. %s",
            len(index.without_boxes),
            cfg.gqa["objects_info"],
            ", ".join(index.without_boxes[:3]),
        )
    writers = {
        s: ObjectSplit(Path(str(split_file(root, s)) + ".partial"), index, ids) for s, ids in wanted.items()
    }
    return writers, index


def write_tables(h5: h5py.File, tables: GQATables) -> None:
    """The GQA tables of the questions the split file kept (those whose image has features)."""
    kept = h5["questions/question_id"][:]
    tables.subset(kept).write(h5)


def link(cfg: DataConfig, root: Path, wanted: dict[str, np.ndarray]):
    """The split files' `images/` groups as views of the object files, as `build` expects a conversion."""
    import time

    from butd.preparation.convert import ConvertResult

    started = time.time()
    writers, index = link_objects(cfg, root, wanted)
    log.info(
        "features: %d images viewed in place in %d object files (nothing converted)",
        sum(w.num_images for w in writers.values()),
        len(index.files),
    )
    return ConvertResult.viewed(feature_dim=index.feature_dim, writers=writers, seconds=time.time() - started)
