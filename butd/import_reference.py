"""`python -m butd.import_reference checkpoint=... dictionary=... label2ans=...`: original -> butd.

python -m butd.import_reference checkpoint=model.pth dictionary=dictionary.pkl \
    label2ans=trainval_label2ans.pkl

turns a checkpoint of the original implementation into a butd checkpoint that `evaluate`,
`predict` and `visualize` accept. The original `main.py` saves the `state_dict()` of an
`nn.DataParallel` model (keys prefixed `module.`); its tools pickle the dictionary as
`[word2idx, idx2word]` and the answers as a list (`trainval_label2ans.pkl`) with Python 2's
cPickle. The answer order is the one those pickles record (Python 2 dict order), so it is read,
never regenerated; evaluation on our cache maps answers by name.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from butd.config.entry import entry_point
from butd.errors import CheckpointError, UserError
from butd.evaluation.checkpoint import load_checkpoint
from butd.models import count_parameters, from_reference
from butd.models.reference import reference_config
from butd.training.checkpoint_io import atomic_save, load_weights_only
from butd.training.module import VQAModule
from butd.vqa.text import Vocabulary


class ReferenceFileError(UserError):
    """A file of the original implementation that cannot be read as such."""


def _text(value: Any, *, path: Path) -> str:
    """Python 2 `str` arrives as bytes (UTF-8 in these files), `unicode` as str."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    if isinstance(value, str):
        return value
    raise ReferenceFileError(f"{path}: expected strings, found {type(value).__name__} {value!r}")


class _PlainUnpickler(pickle.Unpickler):
    """Builds only what pickle's own opcodes make (lists, dicts, tuples, strings, numbers).

    The reference's pickles hold nothing else, so every import a file asks for (`os.system`
    through `__reduce__`, any class) is refused before it is looked up: nothing in the file runs.
    """

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"it asks to import {module}.{name}; the reference's pickles hold only lists, dicts and "
            "strings, and a pickle that imports can run code, so it was not loaded"
        )


def load_py2_pickle(path: str | Path) -> Any:
    """Unpickle a file written by Python 2 or 3 (plain types only); py2 `str` objects come back as bytes."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceFileError(f"{path}: no such file")
    try:
        with open(path, "rb") as fh:
            return _PlainUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError, IndexError) as err:
        raise ReferenceFileError(f"{path} is not a readable pickle: {err}") from err


def read_dictionary(path: str | Path) -> Vocabulary:
    """The reference's `dictionary.pkl`, `[word2idx, idx2word]`, as our Vocabulary (same ids)."""
    path = Path(path)
    content = load_py2_pickle(path)
    if not (isinstance(content, list | tuple) and len(content) == 2 and isinstance(content[1], list)):
        raise ReferenceFileError(f"{path}: expected the pickled list [word2idx, idx2word] of dictionary.pkl")
    word2idx, idx2word = content
    words = [_text(w, path=path) for w in idx2word]
    if isinstance(word2idx, dict):
        bad = [(w, i) for w, i in word2idx.items() if i >= len(words) or words[i] != _text(w, path=path)]
        if bad:
            raise ReferenceFileError(f"{path}: word2idx and idx2word disagree, e.g. {bad[0]}")
    try:
        return Vocabulary(words)
    except ValueError as err:
        raise ReferenceFileError(f"{path}: {err}") from err


def read_label2ans(path: str | Path) -> list[str]:
    """The reference's `trainval_label2ans.pkl`: the answer of each classifier row."""
    path = Path(path)
    content = load_py2_pickle(path)
    if not isinstance(content, list):
        raise ReferenceFileError(f"{path}: expected the pickled answer list of trainval_label2ans.pkl")
    answers = [_text(a, path=path) for a in content]
    if len(set(answers)) != len(answers):
        raise ReferenceFileError(f"{path}: an answer is listed twice")
    return answers


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The original `torch.save(model.state_dict())` file (a dict of tensors)."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceFileError(f"checkpoint={path}: no such file")
    try:
        state = load_weights_only(path)
    except CheckpointError as err:
        raise ReferenceFileError(f"checkpoint={path} is not a torch state dict: {err}") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ReferenceFileError(f"checkpoint={path}: expected a state dict of tensors")
    return state


def import_reference(
    *,
    checkpoint: str | Path,
    dictionary: str | Path,
    label2ans: str | Path,
    out: str | Path,
    optimizer: dict[str, Any],
    data_config: dict[str, Any] | None = None,
    max_question_len: int = 14,
    overwrite: bool = False,
) -> Path:
    """Write a butd checkpoint holding the original model, its vocabulary and its answers.

    An existing `out` is refused unless `overwrite`; the file is written atomically."""
    if Path(out).exists() and not overwrite:
        raise ReferenceFileError(f"out={out} exists; choose another path, or replace it with overwrite=true")
    state = read_state_dict(checkpoint)
    vocab = read_dictionary(dictionary)
    answers = read_label2ans(label2ans)
    try:
        cfg, sizes = reference_config(state)
        model = from_reference(state)
    except ValueError as err:
        raise ReferenceFileError(f"checkpoint={checkpoint}: {err}") from err
    if sizes["ntoken"] != len(vocab):
        raise ReferenceFileError(
            f"{dictionary} has {len(vocab)} words but the model's embedding has {sizes['ntoken']} "
            "(plus padding); are they from the same run?"
        )
    if sizes["num_answers"] != len(answers):
        raise ReferenceFileError(
            f"{label2ans} has {len(answers)} answers but the model's classifier has "
            f"{sizes['num_answers']} outputs; are they from the same run?"
        )
    module = VQAModule(model=asdict(cfg), **sizes, optimizer=optimizer)
    module.model.load_state_dict(model.state_dict())
    module.metadata = {
        "vocab": vocab.to_json(),
        "answers": answers,
        "data": {"settings": {"max_question_len": max_question_len}},
        "data_config": data_config,
        "imported_from": {
            "checkpoint": str(checkpoint),
            "dictionary": str(dictionary),
            "label2ans": str(label2ans),
        },
    }
    ckpt = {
        "state_dict": module.state_dict(),
        VQAModule.CHECKPOINT_HYPER_PARAMS_KEY: dict(module.hparams),
        "pytorch-lightning_version": pl.__version__,
        "butd": module.metadata,
    }
    out = Path(out)
    atomic_save(ckpt, out)
    return out


@entry_point("import_reference")
def main(cfg: DictConfig) -> None:
    out = cfg.out or Path(cfg.paths.output_dir) / "reference.ckpt"
    path = import_reference(
        checkpoint=cfg.checkpoint,
        dictionary=cfg.dictionary,
        label2ans=cfg.label2ans,
        out=out,
        optimizer=OmegaConf.to_container(cfg.optim.optimizer, resolve=True),
        data_config=OmegaConf.to_container(cfg.data, resolve=False),
        max_question_len=int(cfg.data.max_question_len),
        overwrite=bool(cfg.get("overwrite", False)),
    )
    module = load_checkpoint(path).module
    print(
        f"butd checkpoint written to {path}: {module.model_cfg.attention} attention, "
        f"{count_parameters(module.model):,} parameters, {module.hparams['ntoken']:,} words, "
        f"{module.hparams['num_answers']:,} answers"
    )


if __name__ == "__main__":
    main()
