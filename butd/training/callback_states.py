"""The callback states of a checkpoint, restored only as butd writes them.

A checkpoint's callback states decide what a resumed run does with files and what it records as
its best score, so each is checked before Lightning restores it (`check_callback_states`).
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import torch

from butd.errors import CheckpointError

log = logging.getLogger(__name__)

#: the callbacks whose state butd writes into a checkpoint, by Lightning's state key (the class
#: name, followed for a ModelCheckpoint by its settings); any other state is dropped on load
BUTD_STATES = ("RunCheckpoint", "MetricsJSON", "RunStats", "RNGState")


def _finite(value: Any) -> bool:
    """A real, finite number (a Python number or a one-element tensor); booleans are not scores."""
    if torch.is_tensor(value):
        return value.numel() == 1 and not value.dtype.is_complex and bool(torch.isfinite(value).all())
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _state_problem(name: str, state: Any) -> str | None:
    """What in one butd callback's saved state butd would not have written, or None."""
    if not isinstance(state, dict):
        return f"is a {type(state).__name__}, not a mapping"
    if name == "RunCheckpoint":
        dirpath = state.get("dirpath")
        best = state.get("best_k_models", {})
        if dirpath is not None and not isinstance(dirpath, str):
            return f"dirpath={dirpath!r} is not a folder name"
        if not isinstance(best, dict):
            return "best_k_models is not a mapping"
        for path, score in best.items():
            if not isinstance(path, str) or not path.endswith(".ckpt") or dirpath is None:
                return f"best_k_models names {path!r}, not a checkpoint file"
            if os.path.normpath(os.path.dirname(path)) != os.path.normpath(dirpath):
                return f"best_k_models names {path!r}, outside its checkpoint folder {dirpath}"
            if score is not None and not _finite(score):
                return f"best_k_models gives {path!r} the score {score!r}, not a finite number"
        for key in ("best_model_score", "current_score"):
            value = state.get(key)
            if value is not None and not _finite(value):
                return f"{key}={value!r} is not a finite number"
        kth = state.get("kth_value")  # +-inf until save_top_k checkpoints exist
        if kth is not None and not (_finite(kth) or (torch.is_tensor(kth) and bool(torch.isinf(kth).all()))):
            return f"kth_value={kth!r} is not a number"
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            value = state.get(key, "")
            if not isinstance(value, str) or (
                value and os.path.normpath(os.path.dirname(value)) != os.path.normpath(dirpath or "")
            ):
                return f"{key}={value!r} is not a file of its checkpoint folder {dirpath}"
    elif name == "MetricsJSON":
        history, lineage = state.get("history", []), state.get("lineage", [])
        if not isinstance(history, list) or not isinstance(lineage, list):
            return "history or lineage is not a list"
        if not all(isinstance(d, str) for d in lineage):
            return "lineage holds something other than folder names"
        for i, row in enumerate(history):
            if not isinstance(row, dict) or not isinstance(row.get("epoch"), int):
                return f"history[{i}] is not an epoch's record"
            # a number each (a validation on NaN features logs a NaN loss, and butd records it)
            bad = next((k for k, v in row.items() if not isinstance(k, str) or not _number(v)), None)
            if bad is not None:
                return f"history[{i}][{bad!r}]={row[bad]!r} is not a number"
    elif name == "RunStats":
        best = state.get("best")
        if best is not None and not _finite(best):
            return f"best={best!r} is not a finite number"
    elif name == "RNGState" and state:
        numpy_state, python_state = state.get("numpy"), state.get("python")
        if (
            not torch.is_tensor(state.get("torch"))
            or state["torch"].dtype != torch.uint8
            or tuple(state["torch"].shape) != tuple(torch.get_rng_state().shape)
            or not isinstance(numpy_state, list | tuple)
            or len(numpy_state) != 5
            or not torch.is_tensor(numpy_state[1])
            or numpy_state[1].numel() != 624
            or not isinstance(python_state, list | tuple)
            or len(python_state) != 3
            or not isinstance(python_state[1], list | tuple)
            or len(python_state[1]) != 625
            or not all(isinstance(x, int) for x in python_state[1])
        ):
            return "is not the random number generators' states"
    return None


def _unrecorded_score(key: str, states: dict[str, Any]) -> str | None:
    """A best score of a RunCheckpoint state that the run's own history (MetricsJSON) never
    recorded for its monitor, or None: butd writes the two together, so a score found in one only
    was put there by hand (and would stand as a best that the run never beats)."""
    monitor = re.search(r"'monitor': '([^']+)'", key)
    metrics = next((v for k, v in states.items() if str(k).split("{", 1)[0] == "MetricsJSON"), None)
    if monitor is None or not isinstance(metrics, dict):
        return None
    recorded = {r.get(monitor.group(1)) for r in metrics.get("history", []) if isinstance(r, dict)}
    for path, score in (states[key].get("best_k_models") or {}).items():
        if score is not None and float(score) not in recorded:
            return (
                f"best_k_models gives {path!r} the {monitor.group(1)} {float(score)!r}, which the run's "
                "history never recorded"
            )
    return None


def check_callback_states(checkpoint: dict[str, Any], path: Path) -> None:
    """Keep only the callback states butd writes, each as butd writes it, or refuse the file.

    A checkpoint's callback states decide what a resumed run does with files (the best
    checkpoints it links into its folder, and may later delete) and what it records as its best
    score, so a state that names a file outside its checkpoint folder, a score that is not a finite
    number or a value of the wrong type is refused with one line; states of callbacks butd does not
    have are dropped. `RunCheckpoint.load_state_dict` then reads the best checkpoints by name from
    the folder of the checkpoint being resumed.
    """
    data_state = checkpoint.get("VQADataModule")  # where the training order stood
    if data_state is not None:
        order = data_state.get("train_order") if isinstance(data_state, dict) else "?"
        if order is not None and not (
            isinstance(order, dict)
            and set(order) == {"epoch", "batches_done"}
            and all(map(_count, order.values()))
        ):
            raise CheckpointError(
                f"refused to resume from {path}: its data module state train_order={order!r} is not "
                "a position in the training order; butd never writes that (an altered or foreign file)"
            )
    states = checkpoint.get("callbacks")
    if states is None:
        return
    if not isinstance(states, dict):
        raise CheckpointError(f"refused to resume from {path}: its callback states are not a mapping")
    for key in list(states):
        name = next((n for n in BUTD_STATES if isinstance(key, str) and key.split("{", 1)[0] == n), None)
        if name is None:
            log.info("%s: the state of %r is not butd's; it is not restored", path, key)
            del states[key]
            continue
        problem = _state_problem(name, states[key]) or _unrecorded_score(key, states)
        if problem:
            raise CheckpointError(
                f"refused to resume from {path}: its {name} state {problem}; butd never writes that "
                "(an altered or foreign file). Resume from a checkpoint butd wrote, or start afresh "
                "with ckpt_path=null"
            )
