"""Typed view of a `conf/data/*.yaml` file: which raw files make which cache, with which settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from butd.errors import ConfigError
from butd.schemas import check_types

#: Bumped whenever the layout of the processed cache changes; old caches are then refused.
CACHE_FORMAT_VERSION = 3

BOX_SETS = ("fixed", "adaptive")
#: `data.feature_store` values (`butd.data.stores`)
FEATURE_STORES = ("h5", "ram", "gpu", "auto")


@dataclass
class DataConfig:
    """Where the raw files are, where the cache goes, and the settings that shape the cache.

    Every field that changes the cache's content is recorded in its manifest (see
    `cache_settings`), so a cache made with other settings is refused rather than misread.
    """

    name: str
    raw_dir: str
    cache_dir: str
    #: split -> questions JSON (relative to raw_dir)
    questions: dict[str, str]
    #: split -> annotations JSON; splits without one (test) carry no targets
    annotations: dict[str, str] = field(default_factory=dict)
    #: bottom-up feature TSVs; each image row goes to the split whose questions use it
    features: list[str] = field(default_factory=list)
    glove: str | None = None
    emb_dim: int = 300
    #: `fixed`: every image has exactly `num_boxes` boxes (the 36-box sets); `adaptive`: between
    #: `min_boxes` and `num_boxes` (the 10-100 sets), padded per batch and masked in attention
    boxes: str = "fixed"
    num_boxes: int = 36
    min_boxes: int = 10
    #: boxes the model sees: the first K of the `num_boxes` stored per image, in the feature
    #: file's order (the objects ablation); None: all of them. Not a cache setting.
    use_boxes: int | None = None
    min_answer_count: int = 9
    max_question_len: int = 14
    #: splits whose questions build the word vocabulary (the reference includes test)
    vocab_splits: list[str] = field(default_factory=list)
    #: splits whose annotations build the answer vocabulary
    answer_splits: list[str] = field(default_factory=list)
    #: splits that get a processed file (questions with features, targets if annotated)
    prepare_splits: list[str] = field(default_factory=list)
    #: the reference counts raw annotator answers; True normalises them first (the fix)
    normalize_annotator_answers: bool = False
    #: None (the reference): a word outside the vocabulary is an error. A token such as UNK
    #: (upper case, so no question word equals it): appended to the vocabulary, unseen words
    #: map to it; the fix for vocab_splits=[train]
    unknown_token: str | None = None
    #: the prepared splits training reads, concatenated ([train, val] for a test submission)
    train_splits: list[str] = field(default_factory=lambda: ["train"])
    val_split: str = "val"
    #: conversion of the feature files: processes (None: every core) and bytes per work unit
    prepare_workers: int | None = None
    prepare_chunk_mb: float = 16.0
    #: a corrupted feature row stops prepare (naming file, line and image); True skips and counts it
    skip_bad_rows: bool = False
    batch_size: int = 512
    num_workers: int = 0
    #: where features live while training: `h5` (read per batch), `ram` or `gpu` (whole
    #: splits in float16 tensors, batches gathered by index), `auto` (gpu, ram, h5: the
    #: first that fits)
    feature_store: str = "h5"
    #: generate the raw files and the cache when missing (the synthetic set does)
    auto_prepare: bool = False
    #: `butd.data.synthetic.SyntheticSpec` fields when the raw files are generated
    synthetic: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        splits = set(self.questions)
        for key in ("vocab_splits", "answer_splits", "prepare_splits"):
            unknown = sorted(set(getattr(self, key)) - splits)
            if unknown:
                raise ConfigError(
                    f"data.{key} names splits {unknown} that data.questions does not list "
                    f"(known: {sorted(splits)})"
                )
        missing = sorted(set(self.answer_splits) - set(self.annotations))
        if missing:
            raise ConfigError(f"data.answer_splits {missing} have no entry in data.annotations")
        if self.boxes not in BOX_SETS:
            raise ConfigError(f"data.boxes={self.boxes!r} is invalid; expected one of {list(BOX_SETS)}")
        if self.boxes == "adaptive" and not 0 < self.min_boxes <= self.num_boxes:
            raise ConfigError(
                f"data.min_boxes={self.min_boxes} must be between 1 and data.num_boxes={self.num_boxes} "
                "(the adaptive sets have 10 to 100)"
            )
        if not self.train_splits:
            raise ConfigError("data.train_splits is empty; name at least one prepared split, e.g. [train]")
        if self.prepare_workers is not None and self.prepare_workers < 0:
            raise ConfigError(
                f"data.prepare_workers={self.prepare_workers!r} is invalid; expected null (every core), "
                "0 (in this process) or a number of processes"
            )
        if self.unknown_token is not None and not self.unknown_token.strip():
            raise ConfigError("data.unknown_token must be a non-empty word, or null for none")
        for key in (
            "num_boxes",
            "min_answer_count",
            "max_question_len",
            "batch_size",
            "emb_dim",
            "prepare_chunk_mb",
        ):
            if getattr(self, key) <= 0:
                raise ConfigError(f"data.{key}={getattr(self, key)!r} is invalid; expected an integer > 0")
        if self.use_boxes is not None and not 0 < self.use_boxes <= self.num_boxes:
            raise ConfigError(
                f"data.use_boxes={self.use_boxes} must be between 1 and the {self.num_boxes} boxes "
                "stored per image (data.num_boxes)"
            )
        if self.feature_store not in FEATURE_STORES:
            raise ConfigError(
                f"data.feature_store={self.feature_store!r} is invalid; "
                f"expected one of {list(FEATURE_STORES)}"
            )
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers={self.num_workers!r} is invalid; expected an integer >= 0")

    @classmethod
    def from_dict(cls, cfg: Any) -> DataConfig:
        """Build from a Hydra/OmegaConf node or a dict; unknown keys are an error naming them."""
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
        cfg = {k: v for k, v in cfg.items() if k != "_target_"}
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConfigError(f"unknown data config keys {unknown}; valid keys: {sorted(known)}")
        check_types(cls, cfg, "data")
        return cls(**cfg)

    @property
    def raw_path(self) -> Path:
        return Path(self.raw_dir)

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir)

    def box_spec(self):
        """The boxes a feature row may have (`butd.data.convert.BoxSpec`)."""
        from butd.data.convert import BoxSpec

        return BoxSpec(self.boxes == "adaptive", self.num_boxes, self.min_boxes)

    def cache_settings(self) -> dict[str, Any]:
        """The settings a cache depends on; compared against its manifest on load."""
        return {
            "format_version": CACHE_FORMAT_VERSION,
            "num_boxes": self.num_boxes,
            "min_answer_count": self.min_answer_count,
            "max_question_len": self.max_question_len,
            "emb_dim": self.emb_dim,
            "vocab_splits": list(self.vocab_splits),
            "answer_splits": list(self.answer_splits),
            "prepare_splits": list(self.prepare_splits),
            "normalize_annotator_answers": self.normalize_annotator_answers,
            "boxes": self.boxes,
            "min_boxes": self.min_boxes if self.boxes == "adaptive" else None,
            "unknown_token": self.unknown_token,
            "synthetic": self.synthetic,
        }
