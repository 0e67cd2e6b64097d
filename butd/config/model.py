"""The model group's structured config: which model, which attention and activation, how wide.

Registered with Hydra's ConfigStore as `model/base` (`butd.config.register`); every
`conf/model/*.yaml` starts from it. The defaults are the reference's final model
(baseline0_newatt). Never imports torch: `butd.models.build_model` turns it into a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from butd.config.registry import Option, Registry
from butd.config.structured import to_typed
from butd.errors import ConfigError


@dataclass(frozen=True)
class ModelKind(Option):
    """A model's entry; `butd.models.build` binds its builder."""

    #: reads the image (the question-only model does not)
    sees_image: bool = True


@dataclass(frozen=True)
class Activation(Option):
    """An activation's entry; `butd.models.fc` binds its function."""

    #: owns a second linear layer, the gate W' (doubling the layer's parameters)
    gated: bool = False


@dataclass(frozen=True)
class Output(Option):
    """How logits become answer scores; `butd.training.metrics` binds the loss that trains them."""

    #: a sigmoid per answer (the debias methods are defined on these), else a softmax over answers
    per_answer: bool = True


#: `model.name`
MODELS: Registry[ModelKind] = Registry(
    "model.name", [ModelKind("butd"), ModelKind("question_only", sees_image=False)]
)
#: `model.attention`: `butd.models.attention` builds each
ATTENTIONS: Registry[Option] = Registry("model.attention", [Option("newatt"), Option("concat")])
#: `model.activation`: `butd.models.fc` implements each
ACTIVATIONS: Registry[Activation] = Registry(
    "model.activation",
    [Activation("relu"), Activation("glu", gated=True), Activation("gated_tanh", gated=True)],
)
#: `model.classifier`: `butd.models.build` builds each (the paper's section 3.5 for two_stream)
CLASSIFIERS: Registry[Option] = Registry("model.classifier", [Option("simple"), Option("two_stream")])
#: `model.output`: how logits become answer scores, and the loss that trains them
OUTPUTS: Registry[Output] = Registry("model.output", [Output("sigmoid"), Output("softmax", per_answer=False)])
#: how the two-stream classifier's text output rows start
CLASSIFIER_INITS: tuple[str, ...] = ("random", "glove")
#: how the word embedding starts
EMBEDDING_INITS: tuple[str, ...] = ("glove", "random")


@dataclass
class ModelConfig:
    """Model hyper-parameters; the defaults are the reference's baseline0_newatt.

    ``att_dropout`` applies to the newatt attention only (the reference's concat has none).
    The classifier's hidden width is ``classifier_hid_mult * num_hid``.
    ``use_spatial`` appends each box's 6-d geometry to its object feature (see BUTDModel);
    off, as in the reference, which reads the boxes but never uses them. The question-only
    model ignores it.

    ``classifier``: ``simple`` (the reference's MLP) or ``two_stream`` (Teney et al. 2018, 3.5:
    a text and an image stream whose output rows can start from per-answer vectors; see
    docs/models.md). ``classifier_init`` (two_stream only): ``glove`` starts the text stream's
    output rows from the GloVe vectors of each answer's words, ``random`` leaves them random.
    ``classifier_image_init`` (two_stream only): an .npz of per-answer image vectors
    (``answers``, ``vectors`` [num_answers, v_dim]) for the image stream's output rows.
    ``output``: ``sigmoid`` per answer with BCE on soft scores (the reference) or ``softmax``
    over answers with cross-entropy on the soft scores normalised to a distribution.
    ``embedding_init``: ``glove`` (the reference) or ``random`` (the embedding's own init).
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
    classifier: str = "simple"
    classifier_init: str = "glove"
    classifier_image_init: str | None = None
    output: str = "sigmoid"
    embedding_init: str = "glove"

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelConfig:
        """Build from a composed `cfg.model` node or a mapping; a bad key or value is a ConfigError."""
        return to_typed(cls, values, "model")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as checkpoints store them."""
        return asdict(self)

    def summary(self) -> str:
        """One short line: `butd, newatt attention, relu, width 256`, then each other field
        that differs from its default (`emb_dim=50`); the whole config is in `.hydra/config.yaml`."""
        main = f"{self.name}, {self.attention} attention, {self.activation}, width {self.num_hid}"
        shown = ("name", "attention", "activation", "num_hid")
        default = ModelConfig()
        changed = [f"{k}={v}" for k, v in asdict(self).items() if k not in shown and v != getattr(default, k)]
        return ", ".join([main, *changed])

    def validate(self) -> None:
        """Raise ConfigError naming the first bad field."""
        for registry in (MODELS, ATTENTIONS, ACTIVATIONS, CLASSIFIERS, OUTPUTS):
            registry[getattr(self, registry.key.removeprefix("model."))]
        for field, valid in (("classifier_init", CLASSIFIER_INITS), ("embedding_init", EMBEDDING_INITS)):
            value = getattr(self, field)
            if value not in valid:
                raise ConfigError(f"model.{field}={value!r} is invalid; expected one of {list(valid)}")
        for field in ("num_hid", "emb_dim", "classifier_hid_mult"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"model.{field}={value!r} is invalid; expected a positive integer")
        for field in ("emb_dropout", "att_dropout", "classifier_dropout"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
                raise ConfigError(f"model.{field}={value!r} is invalid; expected a value in [0, 1)")
        if not isinstance(self.use_spatial, bool):
            raise ConfigError(f"model.use_spatial={self.use_spatial!r} is invalid; expected true or false")
        image_init = self.classifier_image_init
        if image_init is not None and (not isinstance(image_init, str) or not image_init.strip()):
            raise ConfigError(
                f"model.classifier_image_init={image_init!r} is invalid; expected the path of an .npz "
                "file of per-answer image vectors, or null"
            )
        if image_init is not None and self.classifier != "two_stream":
            raise ConfigError(
                f"model.classifier_image_init={image_init!r} initialises the two-stream classifier's "
                f"image stream, and model.classifier={self.classifier!r}; set model.classifier=two_stream "
                "or model.classifier_image_init=null"
            )


def model_config(node: Any) -> ModelConfig:
    """The validated model config of a composed `cfg.model` (or a mapping)."""
    return ModelConfig.from_dict(node)
