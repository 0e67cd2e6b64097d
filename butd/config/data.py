"""The data group's structured config: which raw files make which cache, with which settings.

Registered with Hydra's ConfigStore as `data/base` (`butd.config.register`); every
`conf/data/*.yaml` starts from it, so OmegaConf rejects a wrong type or an unknown key when the
config is composed, and the defaults here (the reference's choices) are written once. The
range checks are in `__post_init__`. Never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from butd.config.registry import Option, Registry
from butd.config.structured import to_typed
from butd.errors import ConfigError

BOX_SETS = ("fixed", "adaptive")
#: `data.feature_store` values (`butd.data.stores`)
FEATURE_STORES = ("h5", "ram", "gpu", "auto")
#: `data.targets`: the annotators' soft scores, or 1 for the top-scored answer(s) (training batches only)
TARGETS = ("soft", "binary")
#: `data.normalize_features`: box features as stored, or each box's vector divided by its L2 norm
FEATURE_NORMS = ("none", "l2")


@dataclass(frozen=True)
class DataFormat(Option):
    """A raw layout's entry (`data.format`). A VQA-style layout binds the reader of its question
    and annotation files (`butd.preparation.formats`); GQA binds its own text stage."""

    #: a layout of its own, not VQA v2's entries: its own preparation (`butd.preparation.gqa`),
    #: its answers in its question files, its own metrics and predictions file (`butd.evaluation.gqa`)
    own_layout: bool = False


#: `data.format`: the raw question/annotation layouts
DATA_FORMATS: Registry[DataFormat] = Registry(
    "data.format", [DataFormat("vqa2"), DataFormat("vqacp"), DataFormat("gqa", own_layout=True)]
)
#: the split `data.holdout_fraction` carves out of the train split, image-disjoint
HOLDOUT = "holdout"

#: the official VQA v2 file names (the synthetic and realistic sets are written under them too)
VQA2_QUESTIONS = {
    "train": "v2_OpenEnded_mscoco_train2014_questions.json",
    "val": "v2_OpenEnded_mscoco_val2014_questions.json",
    "test2015": "v2_OpenEnded_mscoco_test2015_questions.json",
    "test-dev2015": "v2_OpenEnded_mscoco_test-dev2015_questions.json",
}
VQA2_ANNOTATIONS = {
    "train": "v2_mscoco_train2014_annotations.json",
    "val": "v2_mscoco_val2014_annotations.json",
}
#: `data.gqa` (GQA's object features and choices, relative to raw_dir; `butd.preparation.gqa`): the
#: object files (`{}` is the file number), how many there are, their info JSON, and split -> the
#: `{split}_choices.json` of the validity and plausibility metrics
GQA_DEFAULTS: dict[str, Any] = {
    "objects": "objects/gqa_objects_{}.h5",
    "objects_files": 16,
    "objects_info": "objects/gqa_objects_info.json",
    "choices": {"val": "eval/val_choices.json"},
}

#: `data.extra_data` and `data.extra_train` values: extra training data prepared into a split of
#: that name
VG = "vg"
EXTRA_TRAIN = (VG,)
#: `data.vg`: Visual Genome v1.2's files (relative to raw_dir); how many of 10 annotators one VG
#: answer counts as (1: scored 0.3, as one annotator's answer; 10: 1.0, the answer as certain);
#: the splits whose images VG pairs may use (a pair on another split's image is dropped)
#: the key a data section held while `DataConfig` named the DataModule's class (checkpoints made
#: then record it); nothing instantiated it, and `from_dict` drops it
_OLD_TARGET = "_target_"

VG_DEFAULTS: dict[str, Any] = {
    "questions": "visual_genome/question_answers.json",
    "images": "visual_genome/image_data.json",
    "answer_count": 1,
    "image_splits": ["train"],
}


@dataclass
class DataConfig:
    """Where the raw files are, where the cache goes, and the settings that shape the cache.

    The defaults are VQA v2's official file layout and the reference's settings, quirks
    included; a data config (`conf/data/*.yaml`) names its folders and feature files and
    changes what differs.

    Every field that changes the cache's content is recorded in its manifest
    (`butd.cache.load.cache_settings`), so a cache made with other settings is refused rather
    than misread.
    """

    name: str = MISSING
    raw_dir: str = MISSING
    cache_dir: str = MISSING
    #: split -> questions JSON (relative to raw_dir)
    questions: dict[str, str] = field(default_factory=lambda: dict(VQA2_QUESTIONS))
    #: split -> annotations JSON; splits without one (test) carry no targets
    annotations: dict[str, str] = field(default_factory=lambda: dict(VQA2_ANNOTATIONS))
    #: bottom-up feature TSVs; each image row goes to the split whose questions use it
    features: list[str] = field(default_factory=list)
    #: GloVe text file whose vectors initialise the word embedding; None: zeros
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
    #: splits whose questions build the word vocabulary (reference quirk: it includes the test
    #: questions, 19,901 words)
    vocab_splits: list[str] = field(default_factory=lambda: ["train", "val", "test2015", "test-dev2015"])
    #: splits whose annotations build the answer vocabulary
    answer_splits: list[str] = field(default_factory=lambda: ["train", "val"])
    #: splits that get a processed file (questions with features, targets if annotated)
    prepare_splits: list[str] = field(default_factory=lambda: ["train", "val"])
    #: reference quirk: the 10 annotator answers are counted unnormalised (`Two` never counts
    #: toward `2`); True normalises them first (the fix)
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
    #: floats per box feature in the feature TSVs (2048 for the bottom-up sets); null: the size
    #: most rows of the files' first block have, so one bad first row cannot set it
    feature_dim: int | None = None
    batch_size: int = 512
    #: loader worker processes of the `h5` store (the tensor stores gather in the training process)
    num_workers: int = 4
    #: where features live while training: `h5` (read per batch), `ram` or `gpu` (whole
    #: splits in float16 tensors, batches gathered by index), `auto` (gpu, ram, h5: the
    #: first that fits)
    feature_store: str = "auto"
    #: the entry points (train, evaluate, predict, visualize) generate the raw files and prepare the
    #: cache when missing (the synthetic sets do); readers never prepare
    auto_prepare: bool = False
    #: `butd.preparation.synthetic.SyntheticSpec` fields when the raw files are generated
    synthetic: dict[str, Any] | None = None
    #: layout of the questions and annotations files: `vqa2` (`{"questions": [...]}`) or `vqacp`
    #: (bare lists whose entries carry `coco_split`; VQA-CP v1/v2)
    format: str = "vqa2"
    #: > 0: that fraction of the train split's images (and their questions) becomes the split
    #: `holdout`, seeded by `holdout_seed`, to select checkpoints on when the data set has no
    #: validation split (VQA-CP); 0: no holdout
    holdout_fraction: float = 0.0
    holdout_seed: int = 0
    #: a split evaluated once at the end of training with the selected checkpoint (`test/*`
    #: metrics in metrics.json and the loggers); None: none
    test_split: str | None = None
    #: a generated set re-split with changing priors (`butd.preparation.changing_priors`:
    #: `seed`, `major`) after `synthetic` generates it; None: no re-split
    changing_priors: dict[str, Any] | None = None
    #: the folder of another prepared cache whose feature files this cache reads in place instead
    #: of converting `features` again (`butd.preparation.linked`): VQA-CP v2 reads VQA v2's,
    #: whose images it shares. None: convert `features`
    features_from: str | None = None
    #: the training targets: `soft` (the reference: 0, 0.3, 0.6, 0.9, 1 by annotator count) or
    #: `binary` (1 for the answer(s) with the question's highest soft score, 0 elsewhere); applies
    #: to training batches only, so val/score and the official accuracy stay comparable. Not a
    #: cache setting.
    targets: str = "soft"
    #: `none` (the reference) or `l2`: each box's feature vector divided by its L2 norm, in every
    #: split (the paper's choice). Not a cache setting.
    normalize_features: str = "none"
    #: extra training data, each prepared into a split of its name and trained on after
    #: `train_splits` (never validated on): `vg`, Visual Genome's question-answer pairs. Each must
    #: be in `extra_data`. Not a cache setting: the rows of a study with and without VG share a cache
    extra_train: list[str] = field(default_factory=list)
    #: Visual Genome settings (`VG_DEFAULTS`; `butd.preparation.visual_genome`)
    vg: dict[str, Any] = field(default_factory=lambda: dict(VG_DEFAULTS))
    #: the extra training data the cache prepares, each into a split of its name (a cache setting)
    extra_data: list[str] = field(default_factory=list)
    #: GQA's object files and choices (`GQA_DEFAULTS`); read with `format: gqa` only
    gqa: dict[str, Any] = field(default_factory=lambda: dict(GQA_DEFAULTS))

    def __post_init__(self) -> None:
        self._check_extra_train()
        splits = set(self.questions) | ({HOLDOUT} if self.holdout_fraction > 0 else set())
        own_layout = DATA_FORMATS[self.format].own_layout
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ConfigError(
                f"data.holdout_fraction={self.holdout_fraction!r} is invalid; expected a value in [0, 1)"
            )
        if self.holdout_fraction > 0 and "train" not in self.questions:
            raise ConfigError("data.holdout_fraction > 0 needs a split named 'train' in data.questions")
        if self.test_split is not None and self.test_split not in self.prepare_splits:
            raise ConfigError(
                f"data.test_split={self.test_split!r} is not a prepared split; "
                f"expected one of {self.prepare_splits} or null"
            )
        self._check_annotated()
        for key in ("vocab_splits", "answer_splits", "prepare_splits"):
            unknown = sorted(set(getattr(self, key)) - splits)
            if unknown:
                raise ConfigError(
                    f"data.{key} names splits {unknown} that data.questions does not list "
                    f"(known: {sorted(splits)})"
                )
        self._check_gqa()
        # GQA's answers are in its questions files
        missing = sorted(set(self.answer_splits) - set(self.annotations)) if not own_layout else []
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
        if self.feature_dim is not None and self.feature_dim <= 0:
            raise ConfigError(
                f"data.feature_dim={self.feature_dim!r} is invalid; expected an integer > 0 or null"
            )
        if self.feature_store not in FEATURE_STORES:
            raise ConfigError(
                f"data.feature_store={self.feature_store!r} is invalid; "
                f"expected one of {list(FEATURE_STORES)}"
            )
        if self.targets not in TARGETS:
            raise ConfigError(f"data.targets={self.targets!r} is invalid; expected one of {list(TARGETS)}")
        if self.normalize_features not in FEATURE_NORMS:
            raise ConfigError(
                f"data.normalize_features={self.normalize_features!r} is invalid; "
                f"expected one of {list(FEATURE_NORMS)}"
            )
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers={self.num_workers!r} is invalid; expected an integer >= 0")

    def _check_gqa(self) -> None:
        wrong = sorted(set(self.gqa) - set(GQA_DEFAULTS))
        if wrong:
            raise ConfigError(f"data.gqa has unknown keys {wrong}; valid keys: {sorted(GQA_DEFAULTS)}")
        self.gqa = {**GQA_DEFAULTS, **self.gqa}
        files = self.gqa["objects_files"]
        if isinstance(files, bool) or not isinstance(files, int) or files < 1:
            raise ConfigError(
                f"data.gqa.objects_files={files!r} is invalid; expected the number of object files (16)"
            )
        if "{}" not in str(self.gqa["objects"]):
            raise ConfigError(
                f"data.gqa.objects={self.gqa['objects']!r} has no {{}} for the file number "
                "(e.g. objects/gqa_objects_{}.h5)"
            )

    def _check_annotated(self) -> None:
        """The splits trained, validated and tested on need answers: a split without annotations
        (test2015) would train fully and then fail, so it is refused before any work. GQA's answers
        are in its question files, all but the submission's."""
        annotated = set(self.annotations) | set(self.extra_data)
        if DATA_FORMATS[self.format].own_layout:
            annotated |= set(self.questions) - {"submission"}
        if self.holdout_fraction > 0 and "train" in self.annotations:
            annotated.add(HOLDOUT)
        uses = (
            ("train_splits", self.train_splits, "trained on"),
            ("val_split", [self.val_split], "validated on"),
            ("test_split", [self.test_split] if self.test_split is not None else [], "tested on"),
        )
        for key, names, use in uses:
            bare = [s for s in names if s not in annotated]
            if bare:
                value = names if key == "train_splits" else names[0]
                raise ConfigError(
                    f"data.{key}={value} names {bare}, which has no annotations (data.annotations has "
                    f"{sorted(annotated)}), so it cannot be {use}; use an annotated split "
                    "(`python -m butd.predict split=...` answers an unannotated one for EvalAI)"
                )

    def _check_extra_train(self) -> None:
        for key in ("extra_data", "extra_train"):
            unknown = sorted(set(getattr(self, key)) - set(EXTRA_TRAIN))
            if unknown:
                raise ConfigError(
                    f"data.{key} names {unknown}, which butd does not know; known: {list(EXTRA_TRAIN)}"
                )
        unprepared = sorted(set(self.extra_train) - set(self.extra_data))
        if unprepared:
            raise ConfigError(
                f"data.extra_train={self.extra_train} trains on {unprepared}, which the cache does not "
                f"prepare (data.extra_data={self.extra_data}); use a data config that prepares it "
                "(data=vqa2_vg, data=synthetic_vg) or add it to data.extra_data"
            )
        clash = sorted(set(self.extra_data) & (set(self.questions) | set(self.train_splits)))
        if clash:
            raise ConfigError(
                f"data.extra_train {clash} is also a split of data.questions or data.train_splits; "
                "the extra data is prepared into a split of its own name, added after data.train_splits"
            )
        wrong = sorted(set(self.vg) - set(VG_DEFAULTS))
        if wrong:
            raise ConfigError(f"data.vg has unknown keys {wrong}; valid keys: {sorted(VG_DEFAULTS)}")
        self.vg = {**VG_DEFAULTS, "image_splits": list(VG_DEFAULTS["image_splits"]), **self.vg}
        count = self.vg["answer_count"]
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10:
            raise ConfigError(
                f"data.vg.answer_count={count!r} is invalid; expected how many of the 10 annotators one "
                "Visual Genome answer counts as, an integer from 1 (scored 0.3) to 10"
            )
        for key in ("questions", "images"):
            if not isinstance(self.vg[key], str) or not self.vg[key]:
                raise ConfigError(f"data.vg.{key}={self.vg[key]!r} is invalid; expected a file under raw_dir")
        image_splits = self.vg["image_splits"]
        prepared = isinstance(image_splits, list) and not set(image_splits) - set(self.prepare_splits)
        if VG in self.extra_data and not (image_splits and prepared):
            raise ConfigError(
                f"data.vg.image_splits={image_splits!r} is invalid; expected a list of prepared splits "
                f"(data.prepare_splits: {self.prepare_splits}) whose images Visual Genome pairs may use"
            )

    @property
    def training_splits(self) -> list[str]:
        """The splits training reads: `train_splits`, then the `extra_train` data."""
        return list(dict.fromkeys([*self.train_splits, *self.extra_train]))

    @classmethod
    def from_dict(cls, cfg: Any) -> DataConfig:
        """Build from a composed `cfg.data` node or a mapping; a bad key or value is a ConfigError."""
        if isinstance(cfg, Mapping) and _OLD_TARGET in cfg:
            # the data section of a checkpoint written while the section named the DataModule's
            # class (never instantiated from it): the key has no meaning now
            cfg = {k: v for k, v in cfg.items() if k != _OLD_TARGET}
        return to_typed(cls, cfg, "data")

    @property
    def raw_path(self) -> Path:
        return Path(self.raw_dir)

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir)
