"""Jobs of a Hydra multirun: a crashing job is recorded in its folder and the sweep goes on.

Hydra's sweepers stop a sweep at the first job that raises (and a `SystemExit` ends the whole
process). In a multirun, `butd.train` therefore catches a job's error, writes it to
`failure.json` in the job's folder, and returns no score: the basic sweeper goes on to the
next point, the Optuna sweeper marks the trial failed and goes on, and `butd.report` lists
the failure beside the finished runs.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from butd.errors import ConfigError, UserError

log = logging.getLogger(__name__)

FAILURE_FILE = "failure.json"


def in_multirun() -> bool:
    """True inside a job that Hydra launched with `-m` (or a config setting `hydra.mode`)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_dir() -> Path:
    """The running job's output folder."""
    return Path(HydraConfig.get().runtime.output_dir)


def user_error(err: BaseException) -> UserError | None:
    """The UserError behind `err`, also when Hydra's `instantiate` wrapped it."""
    while err is not None:
        if isinstance(err, UserError):
            return err
        err = err.__cause__
    return None


def record_failure(err: BaseException, folder: Path | None = None) -> Path:
    """Write `failure.json` (error type, message, traceback) into the job's folder; returns its path."""
    folder = folder or job_dir()
    cause = user_error(err)
    folder.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "error": type(cause or err).__name__,
        "message": str(cause or err),
        "user_error": cause is not None,
        "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [],
        "traceback": "".join(traceback.format_exception(type(err), err, err.__traceback__)),
    }
    path = folder / FAILURE_FILE
    path.write_text(json.dumps(record, indent=2))
    if cause is not None:
        log.error("job failed: %s (recorded in %s)", cause, path)
    else:
        log.error("job failed (recorded in %s)", path, exc_info=err)
    return path


def _processes_per_node(devices: Any) -> int | None:
    """How many processes `trainer.devices` starts on a node; None when Lightning decides (`auto`, -1)."""
    if isinstance(devices, int) and not isinstance(devices, bool):
        return devices if devices > 0 else None
    if isinstance(devices, str):
        text = devices.strip()
        if text.isdigit():
            return int(text)
        return len([d for d in text.split(",") if d.strip()]) if "," in text else None
    try:
        return len(devices)  # a list of device indices
    except TypeError:
        return None


def check_multirun_devices(cfg: DictConfig) -> None:
    """Refuse several processes per job in a local multirun.

    Lightning's DDP launcher starts the extra ranks by re-running the command line, which in a
    multirun is the whole sweep. Under SLURM (the submitit launcher) SLURM starts the ranks, so
    several devices per job are fine there.
    """
    if not in_multirun() or "SLURM_NTASKS" in os.environ:
        return
    trainer = cfg.get("trainer") or {}
    devices = trainer.get("devices", 1)
    nodes = int(trainer.get("num_nodes", 1) or 1)
    if _processes_per_node(devices) != 1 or nodes > 1:
        raise ConfigError(
            f"trainer.devices={devices}, trainer.num_nodes={nodes} in a local multirun: Lightning "
            "would re-launch the whole sweep on every extra process. Launch the sweep through SLURM "
            "(hydra/launcher=slurm, one job per point), or run the points one at a time"
        )


class SweepSummary(Callback):
    """At the end of a multirun, logs how many jobs finished and which failed, and how to compare them."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        failed = sorted(sweep_dir.glob(f"*/{FAILURE_FILE}"))
        finished = sorted(sweep_dir.glob("*/metrics.json"))
        if not failed and not finished:
            return
        log.info("%d jobs finished, %d failed, in %s", len(finished), len(failed), sweep_dir)
        for path in failed:
            message = json.loads(path.read_text()).get("message", "")
            log.warning("failed: %s: %s", path.parent.name, message.splitlines()[0] if message else "")
        log.info("compare them: python -m butd.report %s", sweep_dir)
