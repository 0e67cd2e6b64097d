"""GQA's conventions every stage shares: the per-question tables a prepared GQA split carries, and
the official GQA metrics computed from them.

The metrics follow the definitions of the GQA release's evaluation script (`eval.py`, checked on
2026-12-06); each is computed over the *balanced* questions (`isBalanced`) that have a
prediction, in percent except the distribution:

- accuracy: 1 for a question whose predicted answer equals its answer, else 0, averaged; also per
  structural type (`verify`, `query`, `choose`, `logical`, `compare`), per semantic type (`obj`,
  `attr`, `rel`, `cat`, `global`) and per number of reasoning steps (the operations of the
  question's `semantic` program, except those whose "operation: argument" text contains `exist`,
  `query: name` or `choose name`);
- binary and open: the accuracy of the questions whose structural type is `query` (open) and of
  all the others (binary);
- validity and plausibility: whether the predicted answer is in the question's `valid`
  (`plausible`) set of `{split}_choices.json`; for a question whose detailed type contains
  `Common` the set is `color`, `material`, `shape` instead;
- consistency: over the questions answered right that entail at least one other question (its
  `entailed` ids, itself excluded), the mean of the accuracy on those entailed questions;
- distribution: per global group (`groups.global`, questions without one are left out), the
  chi-square statistic sum_a (o_a - e_a)^2 / e_a over the answers a of the group's true answers,
  e_a their true counts and o_a how often a was predicted; the groups' statistics averaged,
  each weighted by its number of questions, and divided by 100. Lower is better.

Here a prediction is always an answer of the vocabulary; an entailed question without a
prediction (not in the prepared split, or without features) is left out of the consistency.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

if TYPE_CHECKING:
    from butd.config.data import DataConfig

#: the split file's group that holds the GQA tables (absent in VQA caches)
GROUP = "gqa"
#: GQA's structural types; `query` questions are the open ones, every other type is binary
OPEN = "query"
#: the detailed types whose validity and plausibility set is this (the release's rule)
COMMON = ("color", "material", "shape")
#: operations that do not count as a reasoning step ("operation: argument" contains one of these)
NOT_STEPS = ("exist", "query: name", "choose name")

_STR = h5py.string_dtype(encoding="utf-8")

#: a GQA split file's views of the object files: its dataset -> the object file's (`butd.preparation.gqa`
#: writes them, `butd.cache.integrity` allows exactly these)
OBJECT_VIEWS = {"images/features": "features", "images/boxes": "bboxes"}


def reasoning_steps(semantic: list[dict]) -> int:
    """The number of reasoning steps of a `semantic` program (the release's steps number)."""
    ops = (f"{op.get('operation')}: {op.get('argument')}" for op in semantic)
    return sum(1 for text in ops if not any(word in text for word in NOT_STEPS))


@dataclass
class GQATables:
    """Per-question GQA tables of one split, aligned with its `questions/` rows.

    question_id: int64 [Q] (the cache's ids: each question's position in its raw file)
    key: str [Q] (GQA's question id, e.g. "05515938"); answer: str [Q] (the true answer)
    structural, semantic, detailed, group: str [Q] (group: `groups.global`, "" when none)
    steps: int64 [Q]; balanced: bool [Q]
    entailed: CSR of row indices into this split (offsets [Q+1], rows [nnz])
    valid, plausible: CSR of answer labels (None: the split has no choices file)
    """

    question_id: np.ndarray
    key: np.ndarray
    answer: np.ndarray
    structural: np.ndarray
    semantic: np.ndarray
    detailed: np.ndarray
    group: np.ndarray
    steps: np.ndarray
    balanced: np.ndarray
    entailed: tuple[np.ndarray, np.ndarray]
    valid: tuple[np.ndarray, np.ndarray] | None = None
    plausible: tuple[np.ndarray, np.ndarray] | None = None

    def write(self, h5: h5py.File) -> None:
        g = h5.create_group(GROUP)
        for name in ("key", "answer", "structural", "semantic", "detailed", "group"):
            g.create_dataset(name, data=getattr(self, name).astype(object), dtype=_STR)
        g.create_dataset("question_id", data=self.question_id)
        g.create_dataset("steps", data=self.steps)
        g.create_dataset("balanced", data=self.balanced)
        for name in ("entailed", "valid", "plausible"):
            table = getattr(self, name)
            if table is not None:
                g.create_dataset(f"{name}_offsets", data=table[0])
                g.create_dataset(f"{name}_values", data=table[1])

    @classmethod
    def read(cls, path: Path) -> GQATables | None:
        """The tables of a split file, or None for a split without them (a VQA cache)."""
        with h5py.File(path, "r") as f:
            if GROUP not in f:
                return None
            g = f[GROUP]

            def csr(name: str) -> tuple[np.ndarray, np.ndarray] | None:
                if f"{name}_offsets" not in g:
                    return None
                return g[f"{name}_offsets"][:], g[f"{name}_values"][:]

            strings = {n: g[n].asstr()[:].astype(object) for n in ("key", "answer", "structural")}
            strings |= {n: g[n].asstr()[:].astype(object) for n in ("semantic", "detailed", "group")}
            return cls(
                question_id=g["question_id"][:],
                steps=g["steps"][:],
                balanced=g["balanced"][:].astype(bool),
                entailed=csr("entailed"),
                valid=csr("valid"),
                plausible=csr("plausible"),
                **strings,
            )

    def subset(self, rows: np.ndarray) -> GQATables:
        """The tables of `rows` (sorted), entailed rows renumbered; entailed rows outside dropped."""
        new = np.full(len(self.question_id), -1, np.int64)
        new[rows] = np.arange(len(rows))
        offsets, values = self.entailed
        ent = [new[values[offsets[r] : offsets[r + 1]]] for r in rows]
        ent_rows = [{int(v): 1.0 for v in e if v >= 0} for e in ent]

        def take(table: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray] | None:
            if table is None:
                return None
            o, v = table
            return csr_pairs([v[o[r] : o[r + 1]] for r in rows])

        return GQATables(
            question_id=self.question_id[rows],
            key=self.key[rows],
            answer=self.answer[rows],
            structural=self.structural[rows],
            semantic=self.semantic[rows],
            detailed=self.detailed[rows],
            group=self.group[rows],
            steps=self.steps[rows],
            balanced=self.balanced[rows],
            entailed=csr_pairs([np.array(sorted(e), np.int64) for e in ent_rows]),
            valid=take(self.valid),
            plausible=take(self.plausible),
        )


def csr_pairs(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Lists of integers -> (offsets int64 [n+1], values int64 [nnz])."""
    offsets = np.zeros(len(rows) + 1, np.int64)
    offsets[1:] = np.cumsum([len(r) for r in rows])
    values = np.concatenate([np.asarray(r, np.int64) for r in rows]) if rows else np.zeros(0, np.int64)
    return offsets, values.astype(np.int64)


def _rows(table: tuple[np.ndarray, np.ndarray], i: int) -> np.ndarray:
    return table[1][table[0][i] : table[0][i + 1]]


def _pct(values: list[float] | np.ndarray) -> float:
    return 100.0 * float(np.mean(values)) if len(values) else 0.0


def gqa_metrics(tables: GQATables, predicted: np.ndarray, answers: list[str]) -> dict[str, float]:
    """The official GQA metrics (module docstring) of predicted answer labels.

    predicted: int64 [Q] answer labels aligned with the tables' rows, -1 where a question has no
    prediction. answers: the answer list the labels index. Returns flat names: `accuracy`,
    `binary`, `open`, `consistency`, `validity`, `plausibility` (None-free: only where defined),
    `distribution`, `structural/<type>`, `semantic/<type>`, `steps/<n>`; percent except the
    distribution.
    """
    vocab = np.asarray(answers, dtype=object)
    has = predicted >= 0
    pred_text = np.where(has, vocab[np.clip(predicted, 0, len(vocab) - 1)], None)
    correct = has & (pred_text == tables.answer)
    scored = np.flatnonzero(has & tables.balanced)
    out: dict[str, float] = {"accuracy": _pct(correct[scored])}
    is_open = tables.structural[scored] == OPEN
    out["binary"] = _pct(correct[scored[~is_open]])
    out["open"] = _pct(correct[scored[is_open]])
    for name, column in (("structural", tables.structural), ("semantic", tables.semantic)):
        for value in sorted(set(column[scored])):
            out[f"{name}/{value}"] = _pct(correct[scored[column[scored] == value]])
    for n in sorted(set(tables.steps[scored].tolist())):
        out[f"steps/{n}"] = _pct(correct[scored[tables.steps[scored] == n]])
    label_of = {a: i for i, a in enumerate(answers)}
    common = {label_of[a] for a in COMMON if a in label_of}
    for name in ("valid", "plausible"):
        table = getattr(tables, name)
        if table is None:
            continue
        inside = [
            predicted[i] in (common if "Common" in tables.detailed[i] else set(_rows(table, i).tolist()))
            for i in scored
        ]
        out["validity" if name == "valid" else "plausibility"] = _pct(inside)
    consistency = []
    for i in scored[correct[scored]]:
        entailed = [int(e) for e in _rows(tables.entailed, i) if e != i and has[e]]
        if entailed:
            consistency.append(float(np.mean(correct[entailed])))
    out["consistency"] = _pct(consistency)
    out["distribution"] = chi_square_distribution(
        tables.group[scored], tables.answer[scored], pred_text[scored]
    )
    return out


def chi_square_distribution(groups: np.ndarray, gold: np.ndarray, predicted: np.ndarray) -> float:
    """Per group: sum over the group's true answers a of (o_a - e_a)^2 / e_a; the groups weighted by
    their question counts, averaged, divided by 100 (the release's distribution score)."""
    total, weight = 0.0, 0
    for group in sorted({g for g in groups if g}):
        mine = groups == group
        true_answers, expected = np.unique(gold[mine].astype(str), return_counts=True)
        names, counts = np.unique(predicted[mine].astype(str), return_counts=True)
        observed = {a: int(n) for a, n in zip(names, counts, strict=True)}
        score = sum((observed.get(a, 0) - e) ** 2 / e for a, e in zip(true_answers, expected, strict=True))
        total += score * int(expected.sum())
        weight += int(expected.sum())
    return total / weight / 100 if weight else 0.0


def choices_table(
    keys: list[str], choices: dict, name: str, answers: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """`valid` or `plausible` answers of each question (by GQA key) as answer labels (CSR)."""
    label_of = {a: i for i, a in enumerate(answers)}
    rows = []
    for key in keys:
        entry = choices.get(key) or {}
        rows.append(np.array(sorted({label_of[a] for a in entry.get(name, []) if a in label_of}), np.int64))
    return csr_pairs(rows)


def submission(keys: np.ndarray, labels: np.ndarray, answers: list[str]) -> list[dict[str, str]]:
    """GQA's predictions format: `[{"questionId": str, "prediction": str}]`."""
    return [{"questionId": str(k), "prediction": answers[int(i)]} for k, i in zip(keys, labels, strict=True)]


# ----------------------------------------------------------------- raw files of a GQA config


def object_paths(cfg: DataConfig) -> list[Path]:
    """GQA's object files, which a GQA cache reads in place."""
    pattern = str(cfg.gqa["objects"])
    return [cfg.raw_path / pattern.format(i) for i in range(int(cfg.gqa["objects_files"]))]


def raw_names(cfg: DataConfig) -> list[str]:
    """The raw files of a GQA config besides its questions: the object files, their info, the choices."""
    pattern = str(cfg.gqa["objects"])
    names = [pattern.format(i) for i in range(int(cfg.gqa["objects_files"]))]
    names.append(str(cfg.gqa["objects_info"]))
    names += [f for s, f in (cfg.gqa.get("choices") or {}).items() if s in cfg.prepare_splits]
    return names


def raw_paths(cfg: DataConfig) -> list[Path]:
    """Every raw file a GQA config needs: questions (a folder of chunks as its files), the object
    files and their info, the choices, GloVe."""
    questions = []
    for s in dict.fromkeys([*cfg.vocab_splits, *cfg.answer_splits, *cfg.prepare_splits]):
        path = cfg.raw_path / cfg.questions[s]
        questions += sorted(path.glob("*.json")) if path.is_dir() else [path]
    names = raw_names(cfg) + ([cfg.glove] if cfg.glove else [])
    return list(dict.fromkeys([*questions, *(cfg.raw_path / n for n in names)]))
