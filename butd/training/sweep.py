"""Jobs of a Hydra multirun: the device check a local sweep needs, and the summary at its end.

A crashing job is recorded in its folder and the sweep goes on (`butd.config.entry`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from butd.config.entry import FAILURE_FILE, in_multirun
from butd.errors import ConfigError

log = logging.getLogger(__name__)


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


def log_summary(sweep_dir: Path, *, stopped_by: str | None = None) -> None:
    """How many jobs of the sweep finished and which failed (with why), and how to compare them.

    `stopped_by`: the signal that ended the sweep inside a job; the points after it did not run.
    """
    failed = sorted(sweep_dir.glob(f"*/{FAILURE_FILE}"))
    finished = sorted(sweep_dir.glob("*/metrics.json"))
    if failed or finished:
        log.info("%d jobs finished, %d failed, in %s", len(finished), len(failed), sweep_dir)
        for path in failed:
            message = json.loads(path.read_text()).get("message", "")
            log.warning("failed: %s: %s", path.parent.name, message.splitlines()[0] if message else "")
    if stopped_by:
        log.warning("the sweep was stopped by %s: the points after this job did not run", stopped_by)
    if failed or finished:
        log.info("compare them: python -m butd.report %s", sweep_dir)


class SweepSummary(Callback):
    """At the end of a multirun, logs how many jobs finished and which failed, and how to compare them.

    A sweep stopped by SIGTERM or SIGINT never gets here (the signal ends the process): the
    interrupted job logs the summary itself (`butd.train`).
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        log_summary(Path(config.hydra.sweep.dir))
