"""The one wrapper every entry point runs through: configs registered, user errors printed.

`@entry_point("train")` turns a job function `job(cfg) -> value` into the `main()` of
`python -m butd.train`: it registers the structured configs and resolvers (`butd.config.register`)
before Hydra composes anything, runs the job under `hydra.main`, and prints a user's mistake
(`butd.errors.UserError`, also when Hydra's `instantiate` wrapped it) as one line,
`error: ...`, with exit status 1; anything else is a bug and keeps its traceback.

In a multirun a failing job is recorded instead: Hydra's sweepers stop a sweep at the first
job that raises (and a `SystemExit` ends the whole process), so the job's error goes to
`failure.json` in its folder and the job returns None. The basic sweeper goes on to the next
point, the Optuna sweeper marks the trial failed and goes on, and `butd.report` lists the
failure beside the finished runs.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from butd.config.output import quiet_libraries, whole_lines
from butd.errors import UserError

log = logging.getLogger(__name__)

T = TypeVar("T")

FAILURE_FILE = "failure.json"


def in_multirun() -> bool:
    """True inside a job that Hydra launched with `-m` (or a config setting `hydra.mode`)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_dir() -> Path:
    """The running job's output folder."""
    return Path(HydraConfig.get().runtime.output_dir)


def user_error(err: BaseException) -> UserError | None:
    """The UserError behind `err`, also when Hydra's `instantiate` wrapped it; a mandatory value
    (`???`) the command did not give, and a write the file system refused (read-only, no
    permission), are users' mistakes too, said in one line."""
    while err is not None:
        if isinstance(err, UserError):
            return err
        if isinstance(err, MissingMandatoryValue):
            key = err.full_key or "a value"
            return UserError(f"{key} is required; give {key}=VALUE on the command line")
        refused = _refused_write(err)
        if refused:
            return UserError(refused)
        err = err.__cause__
    return None


#: errno values of a write the file system refuses: permission (EACCES, EPERM), read-only (EROFS)
_REFUSED = {errno.EACCES, errno.EPERM, errno.EROFS}


def _refused_write(err: BaseException) -> str | None:
    """One line for an OSError that a permission or a read-only file system caused, else None."""
    if not isinstance(err, OSError) or err.errno not in _REFUSED:
        return None
    where = err.filename or "a file"
    return (
        f"cannot open {where}: {err.strerror}. Point the command at folders it may read and "
        "write (paths.data_dir, paths.log_dir, data.cache_dir), or fix that folder's permissions"
    )


def record_failure(err: BaseException, folder: Path | None = None, *, quiet: bool = False) -> Path:
    """Write `failure.json` (error type, message, traceback) into the job's folder; returns its path.

    `quiet`: log nothing (a single run prints the error itself)."""
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
    if quiet:
        return path
    if cause is not None:
        log.error("job failed: %s (recorded in %s)", cause, path)
    else:
        log.error("job failed (recorded in %s)", path, exc_info=err)
    return path


def entry_point(config_name: str) -> Callable[[Callable[[DictConfig], T]], Callable[[], T | None]]:
    """Decorate a job function with the config `conf/<config_name>.yaml`; see the module docstring."""

    def decorate(job: Callable[[DictConfig], T]) -> Callable[[], T | None]:
        @functools.wraps(job)
        def task(cfg: DictConfig) -> T | None:
            quiet_libraries(verbose=bool(cfg.get("verbose", False)))
            try:
                return job(cfg)
            except Exception as err:
                if in_multirun():
                    record_failure(err)
                    return None
                # a single run's folder says why it failed too, so `butd.report` lists it as failed
                # (with the reason) rather than as unfinished
                if HydraConfig.initialized():
                    record_failure(err, quiet=True)
                cause = user_error(err)
                if cause is not None:
                    raise SystemExit(f"error: {cause}") from None
                raise

        def main() -> T | None:
            from butd.config import CONF_DIR, register

            whole_lines()
            register()
            run = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(task)
            return run()

        main.job = job  # type: ignore[attr-defined]
        return main

    return decorate
