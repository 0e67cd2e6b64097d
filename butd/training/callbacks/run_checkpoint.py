"""The run's checkpoints, keeping the best score when a resumed run writes to a new folder."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from pytorch_lightning.callbacks import ModelCheckpoint

from butd.files import partial_path

log = logging.getLogger(__name__)


def _link_or_copy(src: Path, dst: Path) -> None:
    """Put `src` at `dst` without touching `src`: a hard link where possible, else a copy."""
    if dst.exists() and dst.samefile(src):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(dst)
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


class RunCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` that keeps the best score when a resumed run writes to a new folder.

    Hydra gives every run its own output folder, resumed runs included, and Lightning then
    forgets the best score of the checkpoint's folder ("dirpath has changed"), so the resumed
    run's first epoch would become "best" however bad. Here the earlier best checkpoints are
    hard-linked (or copied) into the new folder with their scores: the new folder is complete,
    a later improvement replaces only the link, and the earlier folder is never modified.
    Checkpoints are written by replacing the file (`AtomicCheckpointIO`), so a link never
    sees a write.
    """

    def on_train_batch_end(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        # A step checkpoint after the epoch's last batch would come before that epoch's
        # validation, and Lightning resumes from it past the validation (and the epoch's
        # record); the end-of-epoch checkpoint follows the validation shortly anyway.
        if trainer.fit_loop.epoch_loop.batch_progress.current.ready >= trainer.num_training_batches:
            return
        super().on_train_batch_end(trainer, *args, **kwargs)

    #: the checkpoint being resumed (set when Lightning loads it; `on_load_checkpoint`)
    _resumed_from: Path | None = None

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        path = getattr(trainer, "ckpt_path", None)
        self._resumed_from = Path(path) if path and "://" not in str(path) else None

    def _trusted_folder(self, recorded: str) -> Path | None:
        """Where the resumed run's best checkpoints are read from: the folder of the checkpoint
        being resumed, whatever folder its state records (a moved run keeps its best); for a SLURM
        requeue checkpoint (`hpc_ckpt_N.ckpt` in `<task>/slurm/<job>/`), the recorded checkpoint
        folder when it lies inside that task's folder."""
        source = self._resumed_from
        if source is None:
            return None
        if re.fullmatch(r"hpc_ckpt_\d+\.ckpt", source.name) and source.parent.parent.name == "slurm":
            task = source.resolve().parents[2]
            folder = Path(recorded).resolve()
            return folder if folder.is_relative_to(task) and folder.name == "checkpoints" else None
        return source.parent

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The best checkpoints of the resumed run, taken by name from its own checkpoint folder
        (`check_callback_states` has refused any other state), linked into this run's folder."""
        if self.monitor is None:
            return  # nothing to carry: the next save writes this callback's file in this folder
        old_dir = state_dict.get("dirpath") or ""
        folder = self._trusted_folder(old_dir)
        carried: dict[str, Any] = {}
        for old_path, score in (state_dict.get("best_k_models") or {}).items():
            found = folder / Path(old_path).name if folder is not None else None
            if found is None or score is None or not found.is_file() or found.is_symlink():
                continue
            new_path = Path(self.dirpath) / found.name if self.dirpath is not None else found
            _link_or_copy(found, new_path)
            carried[str(new_path)] = score
        if not carried:
            log.warning(
                "the best checkpoints of the resumed run (in %s) are gone; the best %s restarts here",
                folder or old_dir,
                self.monitor,
            )
            return
        ranked = sorted(carried, key=lambda p: float(carried[p]), reverse=self.mode == "max")
        super().load_state_dict(
            {
                **state_dict,
                "dirpath": self.dirpath,
                "best_k_models": carried,
                "best_model_path": ranked[0],
                "best_model_score": carried[ranked[0]],
                "kth_best_model_path": ranked[-1],
                "kth_value": carried[ranked[-1]],
                "last_model_path": "",
            }
        )
        log.info("resumed with the best %s %.4f from %s", self.monitor, float(carried[ranked[0]]), folder)
