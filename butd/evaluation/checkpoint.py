"""A trained checkpoint, made ready to run on a prepared cache.

A butd checkpoint carries the model's hyper-parameters, its word vocabulary and answer list,
and the data config it was trained with (`checkpoint["butd"]`). Before it runs on a cache,
the two must agree: same feature size, every cache word known to the checkpoint, the same
set of answers. Words and answers in another order are remapped rather than refused (the
original implementation's answer order came from Python 2 dict order, so an imported
checkpoint lists the same answers as our cache in another order).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, open_dict

from butd.config.data import DataConfig
from butd.data.cache import CacheInfo
from butd.data.text import Vocabulary
from butd.errors import CheckpointError, ConfigError
from butd.training.checkpoints import UnsafeCheckpointError, load_weights_only
from butd.training.debias import MethodAnswers
from butd.training.module import VQAModule


@dataclass
class Checkpoint:
    """A loaded checkpoint: the module (eval mode, CPU), its vocabulary, answers and data config."""

    path: Path
    module: VQAModule
    vocab: Vocabulary
    answers: list[str]
    #: the `data` section it was trained with, interpolations kept; None for older checkpoints
    data_config: dict[str, Any] | None

    @property
    def model(self) -> torch.nn.Module:
        return self.module.model

    @property
    def answerer(self) -> torch.nn.Module:
        """The model as its training method answers: the model itself, or for a method that changes
        inference (CF-VQA's counterfactual) the model with the method (`MethodAnswers`)."""
        if not self.module.debias.changes_inference:
            return self.module.model
        return MethodAnswers(model=self.module.model, debias=self.module.debias).eval()

    @property
    def feature_dim(self) -> int:
        return int(self.module.hparams["v_dim"])


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a butd checkpoint (trained or imported); a wrong or foreign file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={path}: no such file")
    try:
        raw = load_weights_only(path)
        module = VQAModule(**raw[VQAModule.CHECKPOINT_HYPER_PARAMS_KEY])
        # inference reads the model only: the debias method's own parameters may come from an
        # earlier definition of the method (they are checked when a run resumes)
        missing, unexpected = module.load_state_dict(raw["state_dict"], strict=False)
        wrong = [k for k in (*missing, *unexpected) if not k.startswith("debias.")]
        if wrong:
            raise RuntimeError(f"state_dict keys that do not fit the model: {wrong[:5]}")
        module.on_load_checkpoint(raw)
    except UnsafeCheckpointError:
        raise  # a file that would run code: refused, with why
    except Exception as err:  # a foreign file fails in many ways
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise CheckpointError(
            f"ckpt_path={path} is not a butd checkpoint ({type(err).__name__}: {reason}); for a "
            "checkpoint of the original implementation run `python -m butd.import_reference` first"
        ) from err
    meta = module.metadata
    if not meta.get("vocab") or not meta.get("answers"):
        raise CheckpointError(f"ckpt_path={path} lacks its vocabulary and answer list (checkpoint['butd'])")
    module.eval()
    return Checkpoint(
        path=path,
        module=module,
        vocab=Vocabulary.from_json(meta["vocab"]),
        answers=list(meta["answers"]),
        data_config=meta.get("data_config"),
    )


def data_config(cfg: DictConfig, ckpt: Checkpoint) -> DataConfig:
    """The data config given on the command line (`data=NAME`), else the checkpoint's own.

    The checkpoint's section is resolved against this run's `paths`, so a run moved to another
    machine finds its data under that machine's `paths.data_dir`. Its locations are hints for
    reading only: a file must not choose where data is written, so nothing is prepared or
    generated from them (`auto_prepare` off); name the data on the command line to prepare it.
    """
    if cfg.get("data") is None:
        if ckpt.data_config is None:
            raise ConfigError(
                f"{ckpt.path} does not record which data it was trained on; name it, e.g. data=vqa2"
            )
        with open_dict(cfg):
            cfg.data = {**ckpt.data_config, "auto_prepare": False}
    return DataConfig.from_dict(cfg.data)


@dataclass
class Alignment:
    """How cache ids map to the checkpoint's ids; identity maps are None.

    token_map: long [cache_ntoken + 1], cache word id (padding last) -> checkpoint word id.
    answer_to_cache: long [checkpoint num_answers], checkpoint label -> cache label.
    """

    token_map: torch.Tensor | None
    answer_to_cache: np.ndarray
    notes: list[str]


def _examples(items: list[str], n: int = 5) -> str:
    return ", ".join(repr(x) for x in items[:n]) + (", ..." if len(items) > n else "")


def align(ckpt: Checkpoint, info: CacheInfo) -> Alignment:
    """Check that `ckpt` fits the cache at `info`; CheckpointError names what differs."""
    where = f"the checkpoint {ckpt.path} and the cache at {info.root}"
    if ckpt.feature_dim != info.feature_dim:
        raise CheckpointError(
            f"feature size differs between {where}: the model takes {ckpt.feature_dim}-d object "
            f"features, the cache holds {info.feature_dim}-d ones; use the data config it was trained on"
        )
    notes: list[str] = []
    cache_answers = info.answers()
    if cache_answers == ckpt.answers:
        answer_to_cache = np.arange(len(cache_answers))
    else:
        only_ckpt = [a for a in ckpt.answers if a not in set(cache_answers)]
        only_cache = [a for a in cache_answers if a not in set(ckpt.answers)]
        if only_ckpt or only_cache or len(cache_answers) != len(ckpt.answers):
            raise CheckpointError(
                f"answer lists differ between {where}: {len(ckpt.answers)} vs {len(cache_answers)} answers; "
                f"{len(only_ckpt)} only in the checkpoint ({_examples(only_ckpt)}), "
                f"{len(only_cache)} only in the cache ({_examples(only_cache)}). "
                "Was the checkpoint trained on another data config or answer threshold?"
            )
        label = {a: i for i, a in enumerate(cache_answers)}
        answer_to_cache = np.array([label[a] for a in ckpt.answers])
        notes.append("same answers in another order: predictions are mapped by answer")

    cache_vocab = info.vocabulary()
    token_map = None
    if cache_vocab.idx2word != ckpt.vocab.idx2word:
        unknown = [w for w in cache_vocab.idx2word if w not in ckpt.vocab]
        if unknown:
            raise CheckpointError(
                f"vocabulary differs between {where}: {len(unknown)} of the cache's {len(cache_vocab)} "
                f"words are unknown to the checkpoint ({_examples(unknown)}). "
                "Was the checkpoint trained on another data config?"
            )
        ids = [ckpt.vocab.word2idx[w] for w in cache_vocab.idx2word] + [ckpt.vocab.padding_idx]
        token_map = torch.tensor(ids, dtype=torch.long)
        notes.append("vocabulary in another order: question tokens are mapped by word")
    return Alignment(token_map=token_map, answer_to_cache=answer_to_cache, notes=notes)
