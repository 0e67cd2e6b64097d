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
from omegaconf import DictConfig, OmegaConf, open_dict

from butd.cache.load import CacheInfo
from butd.config.data import DataConfig
from butd.config.plain import InterpolationError, refuse_interpolations, resolve_references
from butd.errors import CheckpointError, ConfigError
from butd.training.checkpoint_io import UnsafeCheckpointError, load_weights_only
from butd.training.debias import MethodAnswers
from butd.training.module import VQAModule
from butd.vqa.text import DEFAULT_MAX_LEN, Vocabulary


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
    """Read a butd checkpoint (trained or imported); a wrong or foreign file is a CheckpointError.

    Nothing in the file is trusted before it is checked: the hyper-parameters against the weights'
    shapes (the model is first built on the meta device, so a crafted `ntoken=1e10` allocates
    nothing), the vocabulary and answers against the model's embedding and output sizes, the
    question length against sane bounds, and the data section for interpolations (`check_metadata`).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={path}: no such file")
    try:
        raw = load_weights_only(path)
        hparams = raw[VQAModule.CHECKPOINT_HYPER_PARAMS_KEY]
        check_weight_shapes(path, hparams, raw["state_dict"])
        module = VQAModule(**hparams)
        # inference reads the model only: the debias method's own parameters may come from an
        # earlier definition of the method (they are checked when a run resumes)
        missing, unexpected = module.load_state_dict(raw["state_dict"], strict=False)
        wrong = [k for k in (*missing, *unexpected) if not k.startswith("debias.")]
        if wrong:
            raise RuntimeError(f"state_dict keys that do not fit the model: {wrong[:5]}")
        module.on_load_checkpoint(raw)
    except (UnsafeCheckpointError, CheckedError, InterpolationError):
        raise  # a file that would run code, or what a check found: refused, with why
    except Exception as err:  # a foreign file fails in many ways
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise CheckpointError(
            f"ckpt_path={path} is not a butd checkpoint ({type(err).__name__}: {reason}); for a "
            "checkpoint of the original implementation run `python -m butd.import_reference` first"
        ) from err
    meta = module.metadata
    if not isinstance(meta, dict) or not meta.get("vocab") or not meta.get("answers"):
        raise CheckpointError(f"ckpt_path={path} lacks its vocabulary and answer list (checkpoint['butd'])")
    vocab, answers = check_metadata(path, meta, hparams)
    module.eval()
    return Checkpoint(
        path=path,
        module=module,
        vocab=vocab,
        answers=answers,
        data_config=meta.get("data_config"),
    )


class CheckedError(CheckpointError):
    """A checkpoint that loads, but whose contents do not hold together; the message names the key."""


#: the longest question a checkpoint may say its model reads (VQA v2 uses 14 tokens); a file
#: claiming more is refused rather than allocating what it asks for
MAX_QUESTION_LEN = 1024


def check_weight_shapes(path: Path, hparams: Any, state_dict: Any) -> None:
    """Refuse hyper-parameters that do not build the model whose weights the file holds.

    The model is built on the meta device (shapes only, no memory), so sizes such as `ntoken`,
    `v_dim`, `num_answers` or `model.num_hid` are checked against the tensors before anything of
    their size is allocated.
    """
    if not isinstance(hparams, dict) or not isinstance(state_dict, dict):
        raise CheckedError(f"ckpt_path={path} is not a butd checkpoint (no hyper-parameters and weights)")
    refuse_interpolations(hparams, source=f"{path} (hyper_parameters)")
    for key in ("ntoken", "v_dim", "num_answers"):
        value = hparams.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise CheckedError(
                f"ckpt_path={path}: hyper_parameters.{key}={value!r} is invalid; expected a positive integer"
            )
    with torch.device("meta"):
        probe = VQAModule(**hparams)
    for key, tensor in probe.state_dict().items():
        saved = state_dict.get(key)
        if torch.is_tensor(saved) and tuple(saved.shape) != tuple(tensor.shape):
            raise CheckedError(
                f"ckpt_path={path}: the weights do not fit its hyper-parameters: {key} is "
                f"{list(saved.shape)} in the file, {list(tensor.shape)} by the hyper-parameters "
                f"(ntoken={hparams['ntoken']}, v_dim={hparams['v_dim']}, "
                f"num_answers={hparams['num_answers']})"
            )


def check_metadata(path: Path, meta: dict[str, Any], hparams: dict[str, Any]) -> tuple[Vocabulary, list[str]]:
    """The vocabulary and answers of `checkpoint["butd"]`, checked against the model's sizes; the
    recorded question length and data section checked too. One CheckpointError naming the key."""
    where = f"ckpt_path={path}: checkpoint['butd']"
    answers = meta["answers"]
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise CheckedError(f"{where}['answers'] is not a list of answers")
    if len(answers) != hparams["num_answers"] or len(set(answers)) != len(answers):
        raise CheckedError(
            f"{where}['answers'] lists {len(answers)} answers ({len(set(answers))} distinct), but the "
            f"model's output has {hparams['num_answers']}: the file was altered or is not butd's"
        )
    try:
        words = meta["vocab"]["words"]
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise TypeError("'words' is not a list of words")
        vocab = Vocabulary.from_json(meta["vocab"])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckedError(f"{where}['vocab'] is not a vocabulary ({err})") from None
    if len(vocab) != hparams["ntoken"] or len(words) != len(vocab):
        raise CheckedError(
            f"{where}['vocab'] holds {len(words)} words ({len(vocab)} distinct), but the model's word "
            f"embedding has {hparams['ntoken']}: the file was altered or is not butd's"
        )
    settings = (meta.get("data") or {}).get("settings") if isinstance(meta.get("data"), dict) else None
    length = (settings or {}).get("max_question_len", DEFAULT_MAX_LEN) if isinstance(settings, dict) else None
    if isinstance(length, bool) or not isinstance(length, int) or not 0 < length <= MAX_QUESTION_LEN:
        raise CheckedError(
            f"{where}['data']['settings']['max_question_len']={length!r} is invalid; expected an "
            f"integer from 1 to {MAX_QUESTION_LEN}"
        )
    data_section = meta.get("data_config")
    if data_section is not None:
        resolve_references(data_section, name="data", lookup=None, source=f"{path} (checkpoint['butd'])")
    return vocab, list(answers)


def data_config(cfg: DictConfig, ckpt: Checkpoint) -> DataConfig:
    """The data config given on the command line (`data=NAME`), else the checkpoint's own.

    The checkpoint's section is data, never resolved by OmegaConf (`butd.config.plain`): its
    `${paths.KEY}` references take this command's `paths`, so a run moved to another machine finds
    its data under that machine's `paths.data_dir`, and its `${data.KEY}` references its own keys;
    any other interpolation was refused when the file was loaded. Its locations are hints for
    reading only: a file must not choose where data is written, so nothing is prepared or
    generated from them (`auto_prepare` off); name the data on the command line to prepare it.
    """
    if cfg.get("data") is None:
        if ckpt.data_config is None:
            raise ConfigError(
                f"{ckpt.path} does not record which data it was trained on; name it, e.g. data=vqa2"
            )
        plain = resolve_references(
            ckpt.data_config,
            name="data",
            lookup={"paths": lambda key: OmegaConf.select(cfg, f"paths.{key}", throw_on_missing=True)},
            source=f"{ckpt.path} (checkpoint['butd'])",
        )
        with open_dict(cfg):
            cfg.data = {**plain, "auto_prepare": False}
        return DataConfig.from_dict({**plain, "auto_prepare": False})
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
