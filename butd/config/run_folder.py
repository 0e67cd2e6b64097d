"""A run folder holds one run: a second command never writes into a folder with another run's records.

Hydra writes `.hydra/` (the config and the overrides) into the run folder before the job starts,
so the check runs as a Hydra callback when the run starts, before that write. The default
folders (`butd.new_folder`) are new by construction; the check matters where a command names its
folder (`hydra.run.dir=...`, `hydra.sweep.dir=...`). Such a folder holding a previous run's
records is refused unless the command resumes that run (a `ckpt_path` inside it) or says
`overwrite=true`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from butd.errors import ConfigError

#: what a run leaves in its folder besides Hydra's `.hydra/` and its log: the files whose loss is
#: a loss of work (a folder holding only those two is a run that stopped before it trained)
RECORDS: tuple[str, ...] = (
    "metrics.json",
    "checkpoints",
    "csv",
    "wandb",
    "divergence.json",
    "predictions.json",
)


def previous_records(folder: str | Path) -> list[str]:
    """The records of an earlier run in `folder` (non-empty folders and files of `RECORDS`)."""
    folder = Path(folder)
    found = []
    for name in RECORDS:
        path = folder / name
        if path.is_file() or (path.is_dir() and any(path.iterdir())):
            found.append(name + ("/" if path.is_dir() else ""))
    return found


def resumes(folder: str | Path, ckpt_path: Any) -> bool:
    """True when `ckpt_path` names a checkpoint inside `folder` (`last`: the folder has a last.ckpt;
    `butd.train` checks afterwards that `last` chose that one)."""
    if ckpt_path is None:
        return False
    if str(ckpt_path) == "last":
        return (Path(folder) / "checkpoints" / "last.ckpt").is_file()
    return Path(folder).resolve() in Path(str(ckpt_path)).resolve().parents


def check_run_folder(folder: str | Path, *, ckpt_path: Any, overwrite: bool, key: str) -> None:
    """Refuse `folder` when it holds an earlier run's records that this command would replace."""
    found = previous_records(folder)
    if not found or overwrite or resumes(folder, ckpt_path):
        return
    last = Path(folder) / "checkpoints" / "last.ckpt"
    resume = f"resume it with ckpt_path={last}, " if last.is_file() else ""
    raise ConfigError(
        f"{key}={folder} holds a previous run ({', '.join(found)}), which this run would replace; "
        f"{resume}choose another {key}, or replace it with overwrite=true"
    )


def check_resumed_folder(folder: str | Path, *, chosen: str | None, overwrite: bool) -> None:
    """After `ckpt_path=last` chose its checkpoint: a run folder with records must be that run's."""
    if chosen is None or overwrite or not previous_records(folder):
        return
    if Path(folder).resolve() not in Path(chosen).resolve().parents:
        raise ConfigError(
            f"ckpt_path=last resumes {chosen}, but this run's folder {folder} holds another run "
            f"({', '.join(previous_records(folder))}), which it would replace; give ckpt_path=PATH, "
            "choose another hydra.run.dir, or replace it with overwrite=true"
        )


def check_sweep_folder(folder: str | Path, *, overwrite: bool) -> None:
    """Refuse a sweep folder whose job folders hold an earlier sweep's records."""
    folder = Path(folder)
    if overwrite or not folder.is_dir():
        return
    jobs = sorted(p.name for p in folder.iterdir() if p.is_dir() and previous_records(p))
    if jobs:
        shown = ", ".join(jobs[:3]) + (f", ... {len(jobs)} in all" if len(jobs) > 3 else "")
        raise ConfigError(
            f"hydra.sweep.dir={folder} holds an earlier sweep's runs ({shown}), which this sweep would "
            "replace; choose another hydra.sweep.dir, or replace them with overwrite=true"
        )


def _named_folder(config: DictConfig, key: str) -> Path | None:
    """The folder `key` names, or None for a folder made new by `butd.new_folder` (the defaults)."""
    parent, _, leaf = key.rpartition(".")
    raw = OmegaConf.to_container(OmegaConf.select(config, parent), resolve=False).get(leaf)
    if raw is None or "butd.new_folder" in str(raw):
        return None
    return Path(str(OmegaConf.select(config, key)))


#: variables that number the processes of one distributed run; any above 0 is not its first process
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


def _another_rank() -> bool:
    """True in the second and later processes of a distributed run (Lightning's DDP launcher starts
    them with the command line and the first process's `hydra.run.dir`; SLURM starts one per task),
    and in a requeued SLURM job (it resumes its own run, `butd.training.slurm`): the folder
    is their run's own."""
    if os.environ.get("SLURM_RESTART_COUNT", "0").strip() not in ("", "0"):
        return True
    for name in _RANK_VARIABLES:
        try:
            if int(os.environ.get(name, "0")) > 0:
                return True
        except ValueError:
            continue
    return False


class RunFolderGuard(Callback):
    """Hydra callback: refuses a named run or sweep folder that holds another run (see module doc).

    Applies to configs with an `overwrite` key (`butd.train`)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "overwrite" not in config or _another_rank():
            return
        folder = _named_folder(config, "hydra.run.dir")
        if folder is None:
            return
        try:
            check_run_folder(
                folder,
                ckpt_path=config.get("ckpt_path"),
                overwrite=bool(config.get("overwrite")),
                key="hydra.run.dir",
            )
        except ConfigError as err:
            raise SystemExit(f"error: {err}") from None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "overwrite" not in config or _another_rank():
            return
        folder = _named_folder(config, "hydra.sweep.dir")
        if folder is None:
            return
        try:
            check_sweep_folder(folder, overwrite=bool(config.get("overwrite")))
        except ConfigError as err:
            raise SystemExit(f"error: {err}") from None
