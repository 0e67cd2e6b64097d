"""What `data.targets` and `data.normalize_features` do to the data as it is read.

Neither changes the cache: both stores (`VQABatches` per batch, `TensorSplit` once at load) call
these same functions, so the two give identical batches.

- Binary targets (`data.targets=binary`, the paper's "binary targets" row): 1 for the answer(s)
  with the question's highest soft score, 0 elsewhere; ties all get 1; a question whose answers
  are all outside the vocabulary (an empty row) stays all zero. Only training batches use them:
  validation keeps the soft score and the official accuracy, so a study's rows stay comparable.
- L2-normalised features (`data.normalize_features=l2`): each box's vector divided by its L2 norm,
  computed in float32 from the float16 store and stored back as float16; a zero vector (a padded
  box) stays zero.
"""

from __future__ import annotations

import numpy as np


def binary_scores(offsets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The values of a soft-score CSR table (`butd.vqa.csr`) made binary: 1.0 where an entry
    holds its row's highest positive score, else 0.0. float32, the shape of `scores`."""
    lengths = np.diff(offsets)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    best = np.zeros(len(lengths), np.float32)
    np.maximum.at(best, rows, scores)
    return ((scores == best[rows]) & (scores > 0)).astype(np.float32)


def l2_normalize(features: np.ndarray, *, block: int = 1 << 16) -> np.ndarray:
    """Each vector of `features` (float16 [..., D]) divided by its L2 norm, in place; returns it.

    The norm is computed in float32 over blocks of `block` vectors (no float32 copy of the
    whole array); vectors of norm 0 stay 0.
    """
    flat = features.view()
    flat.shape = (-1, features.shape[-1])  # raises rather than copy: the work is in place
    for start in range(0, len(flat), block):
        part = flat[start : start + block].astype(np.float32)
        norm = np.sqrt(np.einsum("ij,ij->i", part, part))[:, None]
        np.divide(part, norm, out=part, where=norm > 0)
        flat[start : start + block] = part
    return features
