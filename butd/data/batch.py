"""The batch: one typed record, and the one builder both feature stores use.

A store (`VQABatches`, reading features from HDF5 per batch; `TensorSplit`, holding a split in
tensors) gathers the image side of a batch its own way; the question side (tokens, ids, the
training targets, the official-accuracy rows, the answer types and question-type codes) comes
from the split's `QuestionTables`, whose `batch` makes every `VQABatch` either store gives. The
read-time transforms of the targets (`data.targets`) and of the features
(`data.normalize_features`, `read_features`) are applied here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from butd.data.priors import QuestionTypes
from butd.data.splits import SplitTables
from butd.data.transforms import binary_scores, l2_normalize
from butd.vqa.csr import CSR, gather_rows, padded_targets


@dataclass
class VQABatch:
    """A batch of B questions about their images; K is the boxes per image (with a varying
    number, the batch's largest), D the feature size, A the answers, M the most answers any
    question of the split has an official accuracy for.

    - `v`: float16 [B, K, D], the object features as stored (the model's first layer casts them);
      padded boxes are zero.
    - `b`: float32 [B, K, 6], each box's geometry (`x1/w, y1/h, x2/w, y2/h, bw/w, bh/h`).
    - `q`: int64 [B, T], the question's word ids, padded at the front.
    - `question_id`: int64 [B].
    - `v_mask`: bool [B, K], True for a real box; None when every image has K boxes.
    - `target`: float32 [B, A], the training targets (`data.targets`: soft scores, or binary for
      training batches); None for a split without annotations.
    - `acc_labels`: int64 [B, M] (-1 pads) and `acc_values`: float32 [B, M], the answers that
      score under the official metric and their accuracy; `answer_type`: int64 [B] codes
      (`butd.vqa.official`); each None without annotations.
    - `qtype`: int64 [B], each question's row of the question-type prior (the debias methods);
      None where the split's question types are not set.

    Lightning moves it to the device with `to`, and a DataLoader with `pin_memory` pins it.
    """

    v: torch.Tensor
    b: torch.Tensor
    q: torch.Tensor
    question_id: torch.Tensor
    v_mask: torch.Tensor | None = None
    target: torch.Tensor | None = None
    acc_labels: torch.Tensor | None = None
    acc_values: torch.Tensor | None = None
    answer_type: torch.Tensor | None = None
    qtype: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.q.size(0)

    @property
    def has_official(self) -> bool:
        """Whether the batch carries the official-accuracy rows (an annotated split)."""
        return self.acc_labels is not None

    def _map(self, fn) -> VQABatch:
        return VQABatch(**{f.name: _apply(fn, getattr(self, f.name)) for f in fields(self)})

    def to(self, device: torch.device | str, non_blocking: bool | None = None) -> VQABatch:
        """The batch on `device`; asynchronous to a GPU (from pinned memory), as Lightning copies
        a tensor."""
        device = torch.device(device)
        if non_blocking is None:
            non_blocking = device.type not in ("cpu", "mps")
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> VQABatch:
        """The batch in pinned host memory (what a DataLoader with `pin_memory=True` calls)."""
        return self._map(torch.Tensor.pin_memory)


def _apply(fn, value: torch.Tensor | None) -> torch.Tensor | None:
    return None if value is None else fn(value)


def read_features(features: np.ndarray, normalize_features: str) -> np.ndarray:
    """Box features (float16 [..., D]) as a store serves them, after `data.normalize_features`
    (`none`, or `l2`: each vector divided by its L2 norm, in place). Both stores pass what they
    read from the cache through here: `VQABatches` each batch, `TensorSplit` the split once."""
    return l2_normalize(features) if normalize_features == "l2" else features


class QuestionTables:
    """The per-question side of a split (or splits read as one) in tensors, on `device`: what
    every batch gathers by question index. `targets`: `data.targets`, applied here once.

    Holds the tokens int64 [Q, T], question ids int64 [Q], the training targets as a padded
    label table int64 [Q, L] (padding: label A, a column the dense batch drops) with its scores
    float32 [Q, L], the official-accuracy rows int64/float32 [Q, M] and the answer types
    int64 [Q] (annotated splits), and the question-type codes int64 [Q] once
    `set_question_types` has run. `targets` keeps the CSR table of the targets (after `targets`:
    the soft scores, or the binary ones).
    """

    def __init__(
        self,
        tables: SplitTables,
        *,
        num_answers: int,
        targets: str = "soft",
        device: torch.device | str = "cpu",
        pinned: bool = False,
    ) -> None:
        self.num_answers = num_answers
        self.device = torch.device(device)
        #: gathers go into pinned host memory (a host store on a GPU machine: `TensorSplit`)
        self.pinned = pinned
        self.tokens = self.put(tables.tokens.astype(np.int64))
        self.question_id = self.put(tables.question_id)
        #: the question type of each question (str [Q]; annotated splits), for `set_question_types`
        self.question_type: np.ndarray | None = tables.question_type
        self.targets: CSR | None = None
        self.has_targets = tables.targets is not None
        if tables.targets is not None:
            offsets, labels, scores = tables.targets
            if targets == "binary":
                scores = binary_scores(offsets, scores)
            self.targets = (offsets, labels, scores)
            table_labels, table_scores = padded_targets(*self.targets, pad_label=num_answers)
            self.target_labels, self.target_scores = self.put(table_labels), self.put(table_scores)
            acc_labels, acc_values = gather_rows(*tables.accuracy, np.arange(len(tables.question_id)))
            self.acc_labels, self.acc_values = self.put(acc_labels), self.put(acc_values)
            self.answer_type = self.put(tables.answer_type)
        self.qtype: torch.Tensor | None = None

    def put(self, array: np.ndarray) -> torch.Tensor:
        """`array` as a tensor where the tables live (pinned host memory, or `device`)."""
        t = torch.from_numpy(np.ascontiguousarray(array))
        return t.pin_memory() if self.pinned else t.to(self.device)

    def __len__(self) -> int:
        return len(self.question_id)

    def set_question_types(self, types: QuestionTypes) -> None:
        """Each question's row of the training splits' question-type prior; batches then carry it
        as `qtype`. Nothing to do for a split without question types."""
        if self.question_type is not None:
            self.qtype = self.put(types.codes(self.question_type))

    def take(self, source: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """`source[index]` (rows of the first dimension, any index shape); into pinned memory where
        `pinned`, so that Lightning's `non_blocking` copy to the GPU is truly asynchronous (torch's
        caching host allocator recycles the buffers)."""
        if not self.pinned:
            return source[index]
        rest = source.shape[1:]
        out = torch.empty((*index.shape, *rest), dtype=source.dtype, pin_memory=True)
        torch.index_select(source, 0, index.reshape(-1), out=out.view(-1, *rest))
        return out

    def batch(
        self, idx: torch.Tensor, *, v: torch.Tensor, b: torch.Tensor, v_mask: torch.Tensor | None
    ) -> VQABatch:
        """The batch of questions `idx` (int64 [B], on the tables' device) about images whose
        features `v`, geometry `b` and mask `v_mask` (None: no padding) the store gathered."""
        take = self.take
        batch = VQABatch(
            v=v, b=b, q=take(self.tokens, idx), question_id=take(self.question_id, idx), v_mask=v_mask
        )
        if self.has_targets:
            dense = torch.zeros(len(idx), self.num_answers + 1, device=idx.device, pin_memory=self.pinned)
            dense.scatter_(1, take(self.target_labels, idx), take(self.target_scores, idx))
            batch.target = dense[:, : self.num_answers]
            batch.acc_labels, batch.acc_values = take(self.acc_labels, idx), take(self.acc_values, idx)
            batch.answer_type = take(self.answer_type, idx)
        if self.qtype is not None:
            batch.qtype = take(self.qtype, idx)
        return batch
