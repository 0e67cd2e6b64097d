"""Pre-emption under SLURM: Lightning saves a checkpoint on the requeue signal and requeues the
job, and the requeued job resumes from it (`trainer_setup`)."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

from butd.config.training import SlurmConfig
from butd.training.checkpoint_io import AtomicCheckpointIO

log = logging.getLogger(__name__)


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


def trainer_setup(
    slurm: SlurmConfig, *, log_dir: str | Path, task_name: str
) -> tuple[dict[str, Any], str | None]:
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
    auto_requeue = slurm.auto_requeue
    requeue_signal = signal.Signals[slurm.requeue_signal]
    plugins.append(SLURMEnvironment(auto_requeue=auto_requeue, requeue_signal=requeue_signal))
    if not auto_requeue:
        return kwargs, None
    folder = requeue_dir(log_dir=log_dir, task_name=task_name, job_key=job_key)
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
