"""Checkpoint files: written atomically, read as tensors and plain values only, and a clear error
for a file that is damaged, foreign or too big for the disk.

Lightning's default writer goes through a temporary file in the system temp folder and moves
it into place; where that folder is on another file system (node-local /tmp, checkpoints on
a shared disk) the move becomes a copy into the final name, and a kill mid-copy leaves a
half-written checkpoint. Here the file goes through `butd.files.atomic_open`: written beside
the final one, fsynced and swapped in, so a reader sees the old file or the new one, never a part.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from butd.errors import CheckpointError, disk_full
from butd.files import atomic_open, disk_full_message
from butd.training.callback_states import check_callback_states


def atomic_save(obj: Any, path: Path) -> None:
    """`torch.save` to `path` such that `path` only ever holds a complete file."""
    try:
        with atomic_open(path, "wb") as fh:
            torch.save(obj, fh)
    except BaseException as err:
        full = disk_full(err)
        if full:
            raise _disk_full_error(path, full) from err
        raise


def _disk_full_error(path: Path, words: str) -> CheckpointError:
    """The message for a checkpoint that did not fit: what is free, what was kept, how to go on."""
    kept = sorted(p.name for p in path.parent.glob("*.ckpt"))
    previous = f"the previous {path.name} is intact; " if path.is_file() else ""
    resume = path if path.is_file() else path.parent / "last.ckpt"
    hint = (
        f"then resume with ckpt_path={resume}"
        if resume.is_file()
        else "then run again (no checkpoint of this run was written yet)"
    )
    return CheckpointError(
        disk_full_message(
            words,
            writing=f"writing checkpoint {path}",
            folder=path.parent,
            kept=(
                f"Nothing half-written was left: {previous}checkpoints kept in {path.parent}: "
                f"{kept or 'none'}"
            ),
            larger="paths.log_dir",
            then=hint,
        )
    )


def _unreadable(path: Path, err: BaseException) -> CheckpointError:
    others = sorted(p.name for p in path.parent.glob("*.ckpt") if p.name != path.name)
    if others:
        hint = (
            f"Other checkpoints in {path.parent}: {', '.join(others)}; resume from one of them "
            "with ckpt_path=PATH, or start afresh with ckpt_path=null."
        )
    else:
        hint = "Resume from another checkpoint with ckpt_path=PATH, or start afresh with ckpt_path=null."
    return CheckpointError(
        f"cannot read the checkpoint {path}: {type(err).__name__}: {err}\n"
        "It is truncated or not a checkpoint (a copy cut short, a full disk?); it was left as it is. " + hint
    )


class UnsafeCheckpointError(CheckpointError):
    """A file that asks to import code when loaded (a crafted or foreign pickle): never loaded."""


def _weights_only_refusal(path: Path, err: BaseException) -> CheckpointError | None:
    """torch's refusal of a file that holds more than tensors and plain values, as a butd message.

    torch's own message advises loading with `weights_only=False`; butd never does, since such a
    file can run code when loaded, so the advice is dropped and the offending global kept.
    """
    text = str(err)
    found = re.search(r"(?:Unsupported global|GLOBAL|Trying to call reduce)[^\n]*", text)
    if "Weights only load failed" not in text or found is None:
        return None  # damaged or not a pickle at all: `_unreadable` says so
    reason = found.group(0).strip()[:200]
    return UnsafeCheckpointError(
        f"refused to load {path}: it holds objects beyond tensors and plain values ({reason}). "
        "butd loads checkpoints with weights_only=True, because such a file can run code when "
        "loaded; use a checkpoint written by butd, or convert the original's with "
        "`python -m butd.import_reference`"
    )


def load_weights_only(path: str | Path, map_location: Any = "cpu") -> Any:
    """`torch.load` that builds tensors and plain values only, whatever the torch version or the
    `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD` variable say (an explicit `weights_only=True` wins over it)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch reports a refused or damaged file in many ways
        raise (_weights_only_refusal(path, err) or _unreadable(path, err)) from err


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with atomic local writes and a `CheckpointError` for unreadable files."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None or "://" in str(path):
            # remote storage and its options: Lightning's own (fsspec transaction) writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_save(checkpoint, Path(path))

    def load_checkpoint(
        self,
        path: Any,
        map_location: Callable | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        if not Path(path).is_file() and "://" not in str(path):
            raise CheckpointError(f"checkpoint {path}: no such file")
        try:
            # never anything but weights_only: a resumed checkpoint must not run code either
            checkpoint = super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except Exception as err:  # torch reports a damaged file in many ways
            raise (_weights_only_refusal(Path(path), err) or _unreadable(Path(path), err)) from err
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise _unreadable(Path(path), ValueError("no 'state_dict' entry: not a Lightning checkpoint"))
        check_callback_states(checkpoint, Path(path))
        return checkpoint
