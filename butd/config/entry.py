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
import logging
import os
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
from butd.config.registry import closest
from butd.errors import UserError
from butd.files import atomic_write_json

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
    atomic_write_json(path, record)
    if quiet:
        return path
    if cause is not None:
        log.error("job failed: %s (recorded in %s)", cause, path)
    else:
        log.error("job failed (recorded in %s)", path, exc_info=err)
    return path


def supersede_failure(folder: Path) -> Path | None:
    """A job that succeeds in a folder whose earlier attempt failed (a sweep job resumed in place):
    its `failure.json` becomes `failure.superseded.N.json`, kept, so that the folder reads as the
    finished run it now holds (the report and the sweep summary read `failure.json` first).
    Returns the record's new path, or None when there was none (or another rank moved it)."""
    path = folder / FAILURE_FILE
    if not path.is_file():
        return None
    n = 1
    while (target := folder / f"failure.superseded.{n}.json").exists():
        n += 1
    try:
        path.rename(target)
    except FileNotFoundError:  # every rank of a multi-process job ends here; one moves the record
        return None
    log.info("the earlier failure of this run is superseded: %s", target)
    return target


def _from_composition(err: BaseException) -> bool:
    """Whether Hydra or OmegaConf raised `err` (composing the config), not the job or the terminal."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(err, HydraException | OmegaConfBaseException):
        return True
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith("omegaconf")


def composition_error(err: BaseException, config_name: str) -> str:
    """One line for an error Hydra raised while composing the config from the command line:
    `model.activaton is not a model option; did you mean model.activation?`."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    cause = err.__cause__
    if isinstance(cause, ConfigAttributeError | ConfigKeyError) and cause.full_key:
        key = str(cause.full_key)
        group, _, name = key.rpartition(".")
        parent = cause.parent_node
        options = [str(k) for k in parent.keys()] if hasattr(parent, "keys") else []
        where = f"a {group} option" if group else f"an option of the {config_name} config"
        close = [f"{group}.{c}" if group else c for c in closest(name, options)]
        if close:
            return f"{key} is not {where}; did you mean {' or '.join(close)}?"
        show = f"--cfg job --package {group}" if group else "--cfg job"
        return f"{key} is not {where}; `python -m butd.{config_name} {show}` lists them"
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and "/" in err.missing_cfg_file:
        group, _, name = err.missing_cfg_file.rpartition("/")
        options = [o for o in (err.options or []) if o != "base"]
        close = closest(name, options)
        hint = f"did you mean {' or '.join(f'{group}={c}' for c in close)}?" if close else ""
        return f"{group}={name} is not a {group} option ({', '.join(options)}){'; ' + hint if hint else ''}"
    if isinstance(cause, OmegaConfBaseException):
        reason = str(cause).splitlines()[0] if str(cause).strip() else type(cause).__name__
        return f"{str(err).splitlines()[0]}: {reason}"
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reason = "; ".join(lines[:2]) or type(err).__name__
    return f"the {config_name} config could not be composed from the command line: {reason}"


def entry_point(config_name: str) -> Callable[[Callable[[DictConfig], T]], Callable[[], T | None]]:
    """Decorate a job function with the config `conf/<config_name>.yaml`; see the module docstring."""

    def decorate(job: Callable[[DictConfig], T]) -> Callable[[], T | None]:
        @functools.wraps(job)
        def task(cfg: DictConfig) -> T | None:
            quiet_libraries(verbose=bool(cfg.get("verbose", False)))
            try:
                result = job(cfg)
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
            if HydraConfig.initialized():  # the job, the one that wrote any failure.json, succeeded
                supersede_failure(job_dir())
            return result

        started: list[bool] = []

        @functools.wraps(job)  # Hydra names the job (and its `<job>.log`) after the job's module
        def job_started(cfg: DictConfig) -> T | None:
            started.append(True)
            return task(cfg)

        def main() -> T | None:
            from butd.config import CONF_DIR, register

            whole_lines()
            register()
            run = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(
                job_started
            )
            # Hydra prints a composition error (a mistyped key) as several lines of advice; raised
            # to here instead, it becomes one `error: ...` line. HYDRA_FULL_ERROR=1 set by the user
            # keeps Hydra's own report.
            ours = "HYDRA_FULL_ERROR" not in os.environ
            if ours:
                os.environ["HYDRA_FULL_ERROR"] = "1"
            try:
                return run()
            except Exception as err:
                if started or not ours or not _from_composition(err):
                    raise
                raise SystemExit(f"error: {composition_error(err, config_name)}") from None
            finally:
                if ours:
                    os.environ.pop("HYDRA_FULL_ERROR", None)

        main.job = job  # type: ignore[attr-defined]
        return main

    return decorate
