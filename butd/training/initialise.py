"""A fresh model's pretrained starting values: the word embedding from GloVe and the two-stream
classifier's output rows from answer vectors, as `model.embedding_init`, `model.classifier_init`
and `model.classifier_image_init` say. A checkpoint's weights replace them when a run resumes."""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from butd.cache.load import CacheInfo
from butd.config.data import DataConfig
from butd.config.model import ModelConfig
from butd.data.answer_vectors import answer_glove, answer_image_vectors
from butd.errors import UserError

log = logging.getLogger(__name__)


def initialise_weights(model: nn.Module, cfg: ModelConfig, *, data: DataConfig, info: CacheInfo) -> None:
    """Copy the configured pretrained vectors into `model` (built from `cfg` for `info`'s cache)."""
    if cfg.embedding_init == "glove":
        model.w_emb.init_from(info.glove())
    if cfg.classifier != "two_stream":
        return
    answers = info.answers()
    if cfg.classifier_init == "glove":
        if not data.glove:
            raise UserError(
                f"model.classifier_init=glove needs a GloVe file, and data={data.name} names none "
                "(data.glove is empty); set data.glove or model.classifier_init=random"
            )
        rows = answer_glove(data.raw_path / data.glove, answers, cfg.emb_dim)
        model.classifier.init_text_rows(rows.vectors)
        log.info(
            "two-stream text rows: GloVe of %d of %d answers (%d without a word in GloVe start at zero)",
            rows.found,
            len(answers),
            len(answers) - rows.found,
        )
    if cfg.classifier_image_init is not None:
        path = Path(cfg.classifier_image_init).expanduser()
        model.classifier.init_image_rows(answer_image_vectors(path, answers, info.feature_dim))
        log.info("two-stream image rows: %d answer vectors from %s", len(answers), path)
