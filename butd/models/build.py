"""The one function that turns a model config (`butd.config.model.ModelConfig`) into a model."""

from __future__ import annotations

from torch import nn

from butd.config.model import CLASSIFIERS, MODELS, ModelConfig
from butd.models.attention import build_attention
from butd.models.butd import SPATIAL_DIM, BUTDModel, QuestionOnlyModel
from butd.models.classifier import Classifier, TwoStreamClassifier
from butd.models.fc import FCLayer
from butd.models.language import QuestionEncoder, WordEmbedding


def build_model(cfg: ModelConfig, *, ntoken: int, v_dim: int, num_answers: int) -> nn.Module:
    """Assemble the model named by ``cfg`` for a vocabulary, feature size and answer set.

    ntoken: words in the vocabulary (the padding row is added on top);
    v_dim: object feature size (the box geometry's 6 are added on top with use_spatial);
    num_answers: classifier outputs.
    """
    w_emb = WordEmbedding(ntoken, cfg.emb_dim, dropout=cfg.emb_dropout)
    q_encoder = QuestionEncoder(cfg.emb_dim, cfg.num_hid)
    q_net = FCLayer(cfg.num_hid, cfg.num_hid, activation=cfg.activation)
    classifier = build_classifier(cfg, v_dim=v_dim, num_answers=num_answers)
    parts = {"w_emb": w_emb, "q_encoder": q_encoder, "q_net": q_net, "classifier": classifier}
    return MODELS.implementation(cfg.name)(cfg, v_dim=v_dim, **parts)


@MODELS.implements("butd")
def _butd(cfg: ModelConfig, *, v_dim: int, **parts: nn.Module) -> nn.Module:
    obj_dim = v_dim + SPATIAL_DIM if cfg.use_spatial else v_dim
    attention = build_attention(
        cfg.attention, obj_dim, cfg.num_hid, cfg.num_hid, activation=cfg.activation, dropout=cfg.att_dropout
    )
    v_net = FCLayer(obj_dim, cfg.num_hid, activation=cfg.activation)
    return BUTDModel(attention=attention, v_net=v_net, use_spatial=cfg.use_spatial, **parts)


@MODELS.implements("question_only")
def _question_only(cfg: ModelConfig, *, v_dim: int, **parts: nn.Module) -> nn.Module:
    return QuestionOnlyModel(**parts)


def build_classifier(cfg: ModelConfig, *, v_dim: int, num_answers: int) -> nn.Module:
    """The classifier of `model.classifier` (text stream emb_dim wide, image stream v_dim)."""
    return CLASSIFIERS.implementation(cfg.classifier)(cfg, v_dim=v_dim, num_answers=num_answers)


@CLASSIFIERS.implements("simple")
def _simple(cfg: ModelConfig, *, v_dim: int, num_answers: int) -> nn.Module:
    """The reference's MLP."""
    return Classifier(
        cfg.num_hid,
        cfg.classifier_hid_mult * cfg.num_hid,
        num_answers,
        activation=cfg.activation,
        dropout=cfg.classifier_dropout,
    )


@CLASSIFIERS.implements("two_stream")
def _two_stream(cfg: ModelConfig, *, v_dim: int, num_answers: int) -> nn.Module:
    """The paper's two-stream classifier (section 3.5)."""
    return TwoStreamClassifier(
        cfg.num_hid,
        cfg.emb_dim,
        v_dim,
        num_answers,
        activation=cfg.activation,
        dropout=cfg.classifier_dropout,
    )


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of scalar parameters (weight-norm g scalars included, like the reference count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
