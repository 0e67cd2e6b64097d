"""Load checkpoints of the original implementation (and write ours back in its layout).

Key names of the original (see golden/param_shapes_*.txt) map to ours by prefix:

    w_emb.emb.*                 -> w_emb.emb.*
    q_emb.rnn.*                 -> q_encoder.rnn.*
    v_att.v_proj.main.0.*       -> attention.v_proj.linear.*     (newatt)
    v_att.q_proj.main.0.*       -> attention.q_proj.linear.*     (newatt)
    v_att.nonlinear.main.0.*    -> attention.nonlinear.linear.*  (concat)
    v_att.linear.*              -> attention.linear.*
    q_net.main.0.*              -> q_net.linear.*
    v_net.main.0.*              -> v_net.linear.*
    classifier.main.0.*         -> classifier.hidden.linear.*
    classifier.main.3.*         -> classifier.out.*

The original reads the box geometry but has no parameters for it, so only ``use_spatial=false``
models have a counterpart: ``from_reference`` always builds one, ``to_reference`` refuses the
others (their attention and ``v_net`` take 6 more input columns than the original's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch
from torch import nn

from butd.models.build import ModelConfig, build_model
from butd.models.butd import BUTDModel
from butd.models.classifier import TwoStreamClassifier

_PREFIXES: tuple[tuple[str, str], ...] = (
    ("w_emb.emb.", "w_emb.emb."),
    ("q_emb.rnn.", "q_encoder.rnn."),
    ("v_att.v_proj.main.0.", "attention.v_proj.linear."),
    ("v_att.q_proj.main.0.", "attention.q_proj.linear."),
    ("v_att.nonlinear.main.0.", "attention.nonlinear.linear."),
    ("v_att.linear.", "attention.linear."),
    ("q_net.main.0.", "q_net.linear."),
    ("v_net.main.0.", "v_net.linear."),
    ("classifier.main.0.", "classifier.hidden.linear."),
    ("classifier.main.3.", "classifier.out."),
)
_REVERSE: tuple[tuple[str, str], ...] = tuple((dst, src) for src, dst in _PREFIXES)


def _rename(key: str, pairs: tuple[tuple[str, str], ...]) -> str | None:
    for src, dst in pairs:
        if key.startswith(src):
            return dst + key[len(src) :]
    return None


def _strip_module(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that nn.DataParallel adds to every key."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _require(sd: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in sd:
        raise ValueError(f"reference state dict lacks {key!r}; is it a BUTD (baseline0) checkpoint?")
    return sd[key]


def reference_config(state_dict: Mapping[str, torch.Tensor]) -> tuple[ModelConfig, dict[str, int]]:
    """Infer our config and the data sizes (ntoken, v_dim, num_answers) from the shapes."""
    sd = _strip_module(state_dict)
    emb = _require(sd, "w_emb.emb.weight")
    num_hid = _require(sd, "q_emb.rnn.weight_hh_l0").shape[1]
    v_dim = _require(sd, "v_net.main.0.weight_v").shape[1]
    hid = _require(sd, "classifier.main.0.weight_v").shape[0]
    num_answers = _require(sd, "classifier.main.3.weight_v").shape[0]
    if "v_att.v_proj.main.0.weight_v" in sd:
        attention = "newatt"
    elif "v_att.nonlinear.main.0.weight_v" in sd:
        attention = "concat"
    else:
        raise ValueError("cannot tell the attention type: neither v_att.v_proj nor v_att.nonlinear")
    if hid % num_hid:
        raise ValueError(f"classifier hidden size {hid} is not a multiple of num_hid {num_hid}")
    cfg = ModelConfig(
        name="butd",
        attention=attention,
        activation="relu",
        num_hid=int(num_hid),
        emb_dim=int(emb.shape[1]),
        emb_dropout=0.0,
        att_dropout=0.2,
        classifier_dropout=0.5,
        classifier_hid_mult=int(hid // num_hid),
        use_spatial=False,
    )
    sizes = {"ntoken": int(emb.shape[0]) - 1, "v_dim": int(v_dim), "num_answers": int(num_answers)}
    return cfg, sizes


def from_reference(state_dict: Mapping[str, torch.Tensor]) -> BUTDModel:
    """Build our model from an original-implementation state dict and load its weights.

    The model is always a ``use_spatial=false`` one: the original has no box-geometry inputs.

    Accepts a DataParallel ``module.`` prefix and weight-norm ``g`` of shape [] or [1].
    Loading is strict: unknown or missing keys raise a ValueError naming them.
    """
    cfg, sizes = reference_config(state_dict)
    model = cast(BUTDModel, build_model(cfg, **sizes))

    mapped: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    expected = model.state_dict().keys()
    for key, value in _strip_module(state_dict).items():
        ours = _rename(key, _PREFIXES)
        if ours is None or ours not in expected:
            unexpected.append(key)
            continue
        if ours.endswith("weight_g") and value.numel() == 1:
            value = value.reshape(())  # PyTorch 0.3 stored g as [1]
        mapped[ours] = value
    missing = [_rename(k, _REVERSE) or k for k in expected if k not in mapped]
    if unexpected or missing:
        raise ValueError(
            f"reference state dict does not match a {cfg.attention} BUTD model: "
            f"unexpected keys {sorted(unexpected)}, missing keys {sorted(missing)}"
        )
    try:
        model.load_state_dict(mapped, strict=True)
    except RuntimeError as err:
        raise ValueError(f"reference state dict has inconsistent shapes: {err}") from err
    return model


def to_reference(model: nn.Module) -> dict[str, torch.Tensor]:
    """Our BUTDModel's weights under the original key names (weight_g stays 0-dim).

    Only ReLU models map: gated activations have ``gate`` layers the original lacks. Nor do
    ``use_spatial`` models: the original has no input columns for the box geometry, nor
    two-stream classifiers: the original has the simple one only.
    """
    if not isinstance(model, BUTDModel):
        raise TypeError(f"to_reference needs a BUTDModel, got {type(model).__name__}")
    if model.use_spatial:
        raise ValueError(
            "a use_spatial model has no counterpart in the reference: its attention and v_net take "
            "the 6 box-geometry numbers as extra input columns, which the original model lacks"
        )
    if isinstance(model.classifier, TwoStreamClassifier):
        raise ValueError(
            "a model.classifier=two_stream model has no counterpart in the reference: the original "
            "has the simple two-layer classifier only"
        )
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        ref = _rename(key, _REVERSE)
        if ref is None:
            raise ValueError(f"parameter {key!r} has no counterpart in the reference model")
        out[ref] = value
    return out
