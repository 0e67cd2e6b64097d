"""BUTD model parts, the composed models, `build_model` for a config, and the reference-checkpoint bridge."""

from butd.config.model import ModelConfig
from butd.models.attention import ATTENTIONS, build_attention
from butd.models.build import build_model, count_parameters
from butd.models.butd import BUTDModel, QuestionOnlyModel
from butd.models.fc import ACTIVATIONS
from butd.models.reference import from_reference, to_reference

__all__ = [
    "ACTIVATIONS",
    "ATTENTIONS",
    "BUTDModel",
    "ModelConfig",
    "QuestionOnlyModel",
    "build_attention",
    "build_model",
    "count_parameters",
    "from_reference",
    "to_reference",
]
