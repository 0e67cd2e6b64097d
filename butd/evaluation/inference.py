"""Running a checkpoint: over every question of a prepared split, or on one typed question.

Shared by `butd.evaluate`, `butd.predict` and `butd.visualize`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from butd.cache.load import CacheInfo, box_ranges
from butd.config.data import FEATURE_NORMS, DataConfig
from butd.config.model import OUTPUTS
from butd.data.batch import VQABatch
from butd.data.datamodule import VQABatches
from butd.errors import ConfigError, UserError
from butd.evaluation.checkpoint import Alignment, Checkpoint, align, data_config, load_checkpoint
from butd.models import BUTDModel
from butd.vqa.text import DEFAULT_MAX_LEN, tokenize

log = logging.getLogger(__name__)


class ImageNotFoundError(UserError):
    """An image id that no prepared split of the cache holds."""


class Predictor(pl.LightningModule):
    """Wraps a model for `Trainer.predict`: each batch gives question ids and argmax labels.

    token_map: optional long [cache_ntoken + 1] that turns cache word ids into the model's.
    A batch (`VQABatch`) may carry ``v_mask`` [batch, k] bool (False for padded boxes); it goes to
    the model.
    """

    def __init__(self, model: torch.nn.Module, token_map: torch.Tensor | None = None) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("token_map", token_map, persistent=False)

    def predict_step(self, batch: VQABatch, batch_idx: int) -> dict[str, torch.Tensor]:
        q = batch.q if self.token_map is None else self.token_map[batch.q]
        logits = self.model(batch.v, q, batch.b, batch.v_mask)
        return {"question_id": batch.question_id, "label": logits.argmax(dim=1)}


def split_loader(dataset: VQABatches, *, batch_size: int, num_workers: int) -> DataLoader:
    """Batches of a split in file order, read a batch at a time like the training loaders."""
    return DataLoader(
        dataset,
        sampler=BatchSampler(SequentialSampler(dataset), batch_size=batch_size, drop_last=False),
        batch_size=None,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
    )


def predict_split(
    trainer: pl.Trainer, ckpt: Checkpoint, alignment: Alignment, loader: DataLoader
) -> tuple[np.ndarray, np.ndarray]:
    """question ids int64 [Q] and the checkpoint's argmax labels int64 [Q], in split order."""
    outputs = trainer.predict(Predictor(ckpt.answerer, alignment.token_map), dataloaders=loader)
    qids = torch.cat([o["question_id"] for o in outputs]).cpu().numpy()
    labels = torch.cat([o["label"] for o in outputs]).cpu().numpy()
    return qids, labels


def soft_scores(dataset: VQABatches, cache_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Soft score of each question's predicted label and its best achievable score, both [Q]."""
    offsets, labels, scores = dataset.questions.targets
    rows = np.repeat(np.arange(len(dataset)), np.diff(offsets))
    hit = labels == cache_labels[rows]
    score = np.bincount(rows[hit], weights=scores[hit], minlength=len(dataset))
    best = np.zeros(len(dataset))
    np.maximum.at(best, rows, scores)
    return score, best


# ---------------------------------------------------------------------------------------------
# One question about one image


@dataclass
class ImageRecord:
    """One image's row of a prepared split: features [K, D], spatial [K, 6], boxes [K, 4]."""

    image_id: int
    split: str
    features: np.ndarray
    spatial: np.ndarray
    boxes: np.ndarray
    width: float
    height: float


def image_id_arg(value: Any) -> int:
    """The `image_id=` of the command as an integer, or a ConfigError naming it."""
    bad = ConfigError(f"image_id={value!r} is invalid; expected an image id, an integer such as 42")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise bad
    try:
        return int(value)
    except ValueError:
        raise bad from None


def find_image(info: CacheInfo, image_id: int, split: str | None = None) -> ImageRecord:
    """The image's features from the first prepared split that holds it (or from `split`)."""
    splits = [split] if split else list(info.counts.splits)
    examples: list[str] = []
    for s in splits:
        with h5py.File(info.split_path(s), "r") as f:
            ids = f["images/image_id"][:]
            rows = np.flatnonzero(ids == image_id)
            if rows.size:
                r = int(rows[0])
                w, h = f["images/size"][r]
                start, count = box_ranges(f["images"])
                lo, hi = int(start[r]), int(start[r] + count[r])
                return ImageRecord(
                    image_id=image_id,
                    split=s,
                    features=f["images/features"][lo:hi].astype(np.float32),
                    spatial=f["images/spatial"][lo:hi],
                    boxes=f["images/boxes"][lo:hi],
                    width=float(w),
                    height=float(h),
                )
            examples.append(f"{s}: {', '.join(str(i) for i in np.sort(ids)[:3])}, ...")
    raise ImageNotFoundError(
        f"image_id={image_id} is not in the cache at {info.root} (searched splits {splits}); "
        f"image ids there are e.g. {'; '.join(examples)}"
    )


@dataclass
class Answer:
    """The model's top answers for one question, and where it looked."""

    question: str
    #: question words the vocabulary lacks; they were left out
    unknown_words: list[str]
    #: (answer, probability), best first: as `output` makes them from the logits; for `output`
    #: "tie" (CF-VQA) the total indirect effect log p(a | q, v) - log p(a | q), not a probability
    top: list[tuple[str, float]]
    #: attention weight of each of the K boxes [K], None for models without attention
    attention: np.ndarray | None
    #: the model's `model.output`: a sigmoid per answer, or a softmax over the answers; "tie" for
    #: a CF-VQA checkpoint, which answers with its counterfactual inference
    output: str = "sigmoid"


def max_question_len(ckpt: Checkpoint) -> int:
    """How many tokens the checkpoint's model reads (its data's `max_question_len`, 14 by default)."""
    settings = (ckpt.module.metadata.get("data") or {}).get("settings", {})
    return int(settings.get("max_question_len", DEFAULT_MAX_LEN))


def encode(ckpt: Checkpoint, question: str) -> tuple[list[int], list[str]]:
    """Token ids (front-padded) and the unknown words, which are dropped.

    The reference vocabulary has no unknown token, so an unknown word cannot be encoded; it is
    left out (or mapped to the unknown token when the vocabulary has one) and reported.
    """
    max_len = max_question_len(ckpt)
    vocab = ckpt.vocab
    tokens = tokenize(question)
    unknown = [t for t in tokens if t not in vocab]
    kept = tokens if vocab.unknown_token is not None else [t for t in tokens if t in vocab]
    ids = [vocab.lookup(t) for t in kept][:max_len]
    return [vocab.padding_idx] * (max_len - len(ids)) + ids, unknown


@torch.no_grad()
def answer(ckpt: Checkpoint, image: ImageRecord, question: str, *, top_k: int = 5) -> Answer:
    """Run the model on one question about one image (on the CPU, in fp32)."""
    if image.features.shape[1] != ckpt.feature_dim:
        raise UserError(
            f"image {image.image_id} has {image.features.shape[1]}-d features but {ckpt.path} takes "
            f"{ckpt.feature_dim}-d ones; use the data config the checkpoint was trained on"
        )
    ids, unknown = encode(ckpt, question)
    v = torch.from_numpy(image.features)[None]
    b = torch.from_numpy(image.spatial)[None]
    q = torch.tensor([ids], dtype=torch.long)
    model = ckpt.model.eval().float()
    attention = None
    if isinstance(model, BUTDModel):
        logits, att = model.forward_with_attention(v, q, b)
        attention = att[0, :, 0].numpy()
    else:
        logits = model(v, q, b)
    output = ckpt.module.model_cfg.output
    if ckpt.module.debias.changes_inference:
        output = "tie"
        probs = ckpt.answerer(v, q, b)[0]
    else:
        probs = torch.sigmoid(logits[0]) if OUTPUTS[output].per_answer else torch.softmax(logits[0], dim=0)
    values, labels = probs.topk(min(top_k, probs.numel()))
    top = [(ckpt.answers[int(i)], float(p)) for p, i in zip(values, labels, strict=True)]
    return Answer(question=question, unknown_words=unknown, top=top, attention=attention, output=output)


def _value_key(a: Answer) -> str:
    """`probability`, or `tie` for CF-VQA's total indirect effect (a log ratio, not a probability)."""
    return "tie" if a.output == "tie" else "probability"


def answer_row(a: Answer) -> dict[str, Any]:
    """JSON-ready form of an Answer."""
    return {
        "question": a.question,
        "unknown_words": a.unknown_words,
        "answers": [{"answer": ans, _value_key(a): p} for ans, p in a.top],
        "attention": None if a.attention is None else [float(x) for x in a.attention],
    }


# ---------------------------------------------------------------------------------------------
# Glue for the entry points


def open_checkpoint(cfg: DictConfig) -> tuple[Checkpoint, DataConfig]:
    """The checkpoint named by `cfg.ckpt_path` and the data config of its cache (or `data=`); the
    entry point opens (or prepares) that cache (`butd.preparation.build.prepared_cache`)."""
    ckpt = load_checkpoint(cfg.ckpt_path)
    return ckpt, data_config(cfg, ckpt)


def run_split(
    cfg: DictConfig, ckpt: Checkpoint, data: DataConfig, info: CacheInfo, split: str
) -> tuple[VQABatches, np.ndarray, np.ndarray, Alignment]:
    """Every question of `split` through the model with the configured Lightning Trainer.

    Returns the split's dataset, question ids [Q], the checkpoint's argmax labels [Q] and the
    alignment of checkpoint and cache.
    """
    alignment = align(ckpt, info)
    for note in alignment.notes:
        log.info("%s", note)
    # the features as the model was trained on them: the checkpoint's setting, else the config's
    saved = (ckpt.data_config or {}).get("normalize_features")
    norm = saved if saved in FEATURE_NORMS else data.normalize_features
    dataset = VQABatches(info.split_path(split), num_answers=info.num_answers, normalize_features=norm)
    loader = split_loader(dataset, batch_size=data.batch_size, num_workers=data.num_workers)
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=[])
    qids, labels = predict_split(trainer, ckpt, alignment, loader)
    return dataset, qids, labels, alignment
