"""Compressed sparse rows: how the cache stores per-question answer tables, and the gathers on them.

A table is `(offsets, labels, values)`: row i holds `labels[offsets[i]:offsets[i+1]]` with their
`values`. The soft-score targets and the official-accuracy tables of a split file are such
tables (a few answers per question out of thousands); batches gather their rows with index
arithmetic, never a Python loop per question.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CSR = tuple[np.ndarray, np.ndarray, np.ndarray]


def csr_from_rows(rows: Sequence[dict[int, float]]) -> CSR:
    """A table from one {label: value} dict per row (int64 offsets, int32 labels, float32 values)."""
    offsets = np.zeros(len(rows) + 1, np.int64)
    offsets[1:] = np.cumsum([len(r) for r in rows])
    labels = np.fromiter((k for r in rows for k in r), np.int32, count=int(offsets[-1]))
    values = np.fromiter((v for r in rows for v in r.values()), np.float32, count=int(offsets[-1]))
    return offsets, labels, values


def _row_positions(offsets: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows `idx`: each entry's output row, its column within the row, its position."""
    starts, ends = offsets[idx], offsets[idx + 1]
    lengths = ends - starts
    rows = np.repeat(np.arange(len(idx)), lengths)
    cols = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return rows, cols, cols + np.repeat(starts, lengths)


def csr_rows(offsets: np.ndarray, labels: np.ndarray, values: np.ndarray, idx: np.ndarray) -> CSR:
    """Rows `idx` of a table as a new table."""
    idx = np.asarray(idx, np.int64)
    _, _, pos = _row_positions(offsets, idx)
    new_offsets = np.zeros(len(idx) + 1, np.int64)
    np.cumsum(offsets[idx + 1] - offsets[idx], out=new_offsets[1:])
    return new_offsets, labels[pos], values[pos]


def concat_csr(tables: Sequence[CSR]) -> CSR:
    """Tables stacked row-wise."""
    offsets = [tables[0][0][:1]]
    base = 0
    for t in tables:
        offsets.append(t[0][1:] + base)
        base += int(t[0][-1])
    return (
        np.concatenate(offsets).astype(np.int64),
        np.concatenate([t[1] for t in tables]),
        np.concatenate([t[2] for t in tables]),
    )


def gather_rows(
    offsets: np.ndarray, labels: np.ndarray, values: np.ndarray, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows `idx` of a table as padded arrays.

    Returns labels int64 [len(idx), M] (padding -1) and values float32 [len(idx), M], where M is
    the longest of the rows (at least 1).
    """
    rows, cols, pos = _row_positions(offsets, idx)
    width = max(int(cols.max(initial=-1)) + 1, 1)
    out_labels = np.full((len(idx), width), -1, np.int64)
    out_values = np.zeros((len(idx), width), np.float32)
    out_labels[rows, cols] = labels[pos]
    out_values[rows, cols] = values[pos]
    return out_labels, out_values


def padded_targets(
    offsets: np.ndarray, labels: np.ndarray, scores: np.ndarray, *, pad_label: int
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-score targets as a [Q, L] label table and a [Q, L] score table.

    L is the most answers any question has (at most 10: one per annotator). Padding slots
    point at `pad_label`, an extra column that is dropped after the scatter.
    """
    table_labels, table_scores = gather_rows(offsets, labels, scores, np.arange(len(offsets) - 1))
    table_labels[table_labels < 0] = pad_label
    return table_labels, table_scores
