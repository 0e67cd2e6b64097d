"""Checkpoints that survive crashes: atomic writes, clear read errors, the best score kept on resume,
and Lightning's SLURM requeueing.

Lightning's default writer goes through a temporary file in the system temp folder and moves
it into place; where that folder is on another file system (node-local /tmp, checkpoints on
a shared disk) the move becomes a copy into the final name, and a kill mid-copy leaves a
half-written checkpoint. Here the temporary file sits beside the final one, is fsynced, and
`os.replace` swaps it in: a reader sees the old file or the new one, never a part.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint

from butd.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

#: suffix of a checkpoint being written; a killed run may leave one behind, safe to delete
PARTIAL = ".partial"


def atomic_save(obj: Any, path: Path) -> None:
    """`torch.save` to `path` such that `path` only ever holds a complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + PARTIAL)
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable; some file systems refuse to fsync a directory, which is fine."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
            checkpoint = super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        except Exception as err:  # torch reports a damaged file in many ways
            raise _unreadable(Path(path), err) from err
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise _unreadable(Path(path), ValueError("no 'state_dict' entry: not a Lightning checkpoint"))
        return checkpoint


def _link_or_copy(src: Path, dst: Path) -> None:
    """Put `src` at `dst` without touching `src`: a hard link where possible, else a copy."""
    if dst.exists() and dst.samefile(src):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + PARTIAL)
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

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old_dir = state_dict.get("dirpath")
        if old_dir is None or self.dirpath is None or Path(old_dir).resolve() == Path(self.dirpath).resolve():
            return super().load_state_dict(state_dict)
        if self.monitor is None:
            return  # nothing to carry: the next save writes this callback's file in the new folder
        carried: dict[str, Any] = {}
        for old_path, score in state_dict.get("best_k_models", {}).items():
            if Path(old_path).is_file():
                new_path = Path(self.dirpath) / Path(old_path).name
                _link_or_copy(Path(old_path), new_path)
                carried[str(new_path)] = score
        if not carried:
            log.warning(
                "the best checkpoints of the resumed run (in %s) are gone; the best %s restarts here",
                old_dir,
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
        log.info("resumed with the best %s %.4f from %s", self.monitor, float(carried[ranked[0]]), old_dir)


# ---------------------------------------------------------------------------------------------
# SLURM


def slurm_job_key() -> str | None:
    """The SLURM job (array task) id, which a requeued job keeps; None outside SLURM."""
    from lightning_fabric.plugins.environments import SLURMEnvironment

    if not SLURMEnvironment.detect():
        return None
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None:
        return f"{array_job}_{os.environ.get('SLURM_ARRAY_TASK_ID', '0')}"
    return os.environ.get("SLURM_JOB_ID")


def requeue_dir(*, log_dir: str | Path, task_name: str, job_key: str) -> Path:
    """Where Lightning writes and finds the requeue checkpoints of one SLURM job.

    Hydra's run folder is new on every start, so it cannot be that place: this folder is
    named after the job id, which `scontrol requeue` keeps, and after the Hydra job number
    when one SLURM job runs several jobs of a multirun.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    name = job_key
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        name += f"-{HydraConfig.get().job.num}"
    return Path(log_dir) / task_name / "slurm" / name


def newest_requeue_checkpoint(folder: Path) -> Path | None:
    """Lightning names them hpc_ckpt_1.ckpt, hpc_ckpt_2.ckpt, ...; the highest is the newest."""
    found = [(int(p.stem.rsplit("_", 1)[1]), p) for p in folder.glob("hpc_ckpt_*.ckpt")]
    return max(found)[1] if found else None


def trainer_setup(cfg: DictConfig) -> tuple[dict[str, Any], str | None]:
    """Trainer arguments for atomic checkpoints and SLURM requeueing, and the requeue checkpoint
    to resume from (None unless this is a requeued SLURM job).

    Under SLURM, Lightning saves a checkpoint on the requeue signal and requeues the job
    (`slurm.auto_requeue`); when the requeued job starts, its newest requeue checkpoint
    wins over `ckpt_path`, being the latest state of this very job.
    """
    from lightning_fabric.plugins.environments import SLURMEnvironment

    plugins: list[Any] = [AtomicCheckpointIO()]
    kwargs: dict[str, Any] = {"plugins": plugins}
    job_key = slurm_job_key()
    if job_key is None:
        return kwargs, None
    slurm = cfg.get("slurm") or {}
    auto_requeue = bool(slurm.get("auto_requeue", True))
    requeue_signal = signal.Signals[str(slurm.get("requeue_signal", "SIGUSR1"))]
    plugins.append(SLURMEnvironment(auto_requeue=auto_requeue, requeue_signal=requeue_signal))
    if not auto_requeue:
        return kwargs, None
    folder = requeue_dir(log_dir=cfg.paths.log_dir, task_name=cfg.task_name, job_key=job_key)
    folder.mkdir(parents=True, exist_ok=True)
    kwargs["default_root_dir"] = str(folder)
    newest = newest_requeue_checkpoint(folder)
    if newest is not None:
        log.info("SLURM job %s was requeued: resuming from %s", job_key, newest)
        return kwargs, str(newest)
    log.info(
        "SLURM job %s: on %s, a checkpoint goes to %s and the job is requeued",
        job_key,
        requeue_signal.name,
        folder,
    )
    return kwargs, None


def resolve_ckpt_path(ckpt_path: str | None, *, log_dir: str | Path, task_name: str) -> str | None:
    """`last` means the newest `last.ckpt` among this task's earlier runs; a path must exist."""
    if ckpt_path is None:
        return None
    if str(ckpt_path) == "last":
        found = sorted(
            Path(log_dir, task_name).glob("**/checkpoints/last.ckpt"),
            key=lambda p: p.stat().st_mtime,
        )
        if not found:
            raise ConfigError(
                f"ckpt_path=last: no checkpoints/last.ckpt under {Path(log_dir, task_name)}; "
                "give the checkpoint's path instead"
            )
        return str(found[-1])
    if not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: no such file")
    return str(ckpt_path)
