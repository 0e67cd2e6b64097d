"""Typed model config and the one function that turns it into a model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from torch import nn

from butd.models.attention import ATTENTIONS, build_attention
from butd.models.butd import SPATIAL_DIM, BUTDModel, QuestionOnlyModel
from butd.models.classifier import Classifier
from butd.models.fc import ACTIVATIONS, FCLayer
from butd.models.language import QuestionEncoder, WordEmbedding
from butd.schemas import check_types

MODEL_NAMES: tuple[str, ...] = ("butd", "question_only")


@dataclass
class ModelConfig:
    """Model hyper-parameters; the defaults are the reference's baseline0_newatt.

    ``att_dropout`` applies to the newatt attention only (the reference's concat has none).
    The classifier's hidden width is ``classifier_hid_mult * num_hid``.
    ``use_spatial`` appends each box's 6-d geometry to its object feature (see BUTDModel);
    off, as in the reference, which reads the boxes but never uses them. The question-only
    model ignores it.
    """

    name: str = "butd"
    attention: str = "newatt"
    activation: str = "relu"
    num_hid: int = 1024
    emb_dim: int = 300
    emb_dropout: float = 0.0
    att_dropout: float = 0.2
    classifier_dropout: float = 0.5
    classifier_hid_mult: int = 2
    use_spatial: bool = False

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelConfig:
        """Build from a plain mapping (e.g. a Hydra node), rejecting unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; expected a subset of {sorted(known)}")
        check_types(cls, values, "model")
        cfg = cls(**dict(values))
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        choices = {"name": MODEL_NAMES, "attention": tuple(ATTENTIONS), "activation": ACTIVATIONS}
        for field, valid in choices.items():
            value = getattr(self, field)
            if value not in valid:
                raise ValueError(f"model.{field}={value!r} is invalid; expected one of {list(valid)}")
        for field in ("num_hid", "emb_dim", "classifier_hid_mult"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"model.{field}={value!r} is invalid; expected a positive integer")
        for field in ("emb_dropout", "att_dropout", "classifier_dropout"):
            value = getattr(self, field)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"model.{field}={value!r} is invalid; expected a value in [0, 1)")
        if not isinstance(self.use_spatial, bool):
            raise ValueError(f"model.use_spatial={self.use_spatial!r} is invalid; expected true or false")


def build_model(cfg: ModelConfig, *, ntoken: int, v_dim: int, num_answers: int) -> nn.Module:
    """Assemble the model named by ``cfg`` for a vocabulary, feature size and answer set.

    ntoken: words in the vocabulary (the padding row is added on top);
    v_dim: object feature size (the box geometry's 6 are added on top with use_spatial);
    num_answers: classifier outputs.
    """
    cfg.validate()
    act = cfg.activation
    w_emb = WordEmbedding(ntoken, cfg.emb_dim, dropout=cfg.emb_dropout)
    q_encoder = QuestionEncoder(cfg.emb_dim, cfg.num_hid)
    q_net = FCLayer(cfg.num_hid, cfg.num_hid, activation=act)
    classifier = Classifier(
        cfg.num_hid,
        cfg.classifier_hid_mult * cfg.num_hid,
        num_answers,
        activation=act,
        dropout=cfg.classifier_dropout,
    )
    if cfg.name == "question_only":
        return QuestionOnlyModel(w_emb=w_emb, q_encoder=q_encoder, q_net=q_net, classifier=classifier)
    obj_dim = v_dim + SPATIAL_DIM if cfg.use_spatial else v_dim
    attention = build_attention(
        cfg.attention, obj_dim, cfg.num_hid, cfg.num_hid, activation=act, dropout=cfg.att_dropout
    )
    v_net = FCLayer(obj_dim, cfg.num_hid, activation=act)
    return BUTDModel(
        w_emb=w_emb,
        q_encoder=q_encoder,
        attention=attention,
        q_net=q_net,
        v_net=v_net,
        classifier=classifier,
        use_spatial=cfg.use_spatial,
    )


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of scalar parameters (weight-norm g scalars included, like the reference count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
