"""What a run is called: its W&B name and tags, its sweep folder, its configuration in a report.

A run is named by the command-line overrides that make it differ from its experiment, less
the noise (paths, logger settings, the experiment itself, which is already the W&B group):
`model.activation=glu,seed=1112`. The same names the job folders of a sweep, tags the W&B
run, and groups runs into configurations in `butd.report`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

#: override keys that say where or how a run is recorded, not what it computes
NOISE_KEYS: tuple[str, ...] = (
    "paths",
    "hydra",
    "logger",
    "callbacks",
    "experiment",
    "hparams_search",
    "ckpt_path",
    "overwrite",
    "resume_overrides",
    "tags",
    "task_name",
    "data.num_workers",
    "data.raw_dir",
    "data.cache_dir",
    "trainer.default_root_dir",
    "trainer.enable_progress_bar",
)

#: longest job folder name; longer ones are cut and get a hash of the whole for uniqueness
MAX_DIRNAME = 120


def split_override(override: str) -> tuple[str, str]:
    """`+model.x=1` -> (`model.x`, `1`); a deletion `~key` keeps its `~`."""
    key, _, value = override.partition("=")
    return key.lstrip("+"), value.strip("'\"")


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == k or key.startswith(k + ".") for k in prefixes)


def is_noise(key: str, *, drop: Iterable[str] = (), keep: Iterable[str] = ()) -> bool:
    """True for a key in NOISE_KEYS or `drop`, or under one of them (`paths.data_dir`), unless kept."""
    key = key.lstrip("~")
    return not _under(key, keep) and _under(key, (*NOISE_KEYS, *drop))


def clean_overrides(
    overrides: Iterable[str], *, drop: Iterable[str] = (), keep: Iterable[str] = ()
) -> list[str]:
    """The overrides that change what a run computes, as `key=value`, in command-line order."""
    drop, keep = tuple(drop), tuple(keep)
    kept = []
    for item in overrides:
        key, value = split_override(str(item))
        if not is_noise(key, drop=drop, keep=keep):
            kept.append(f"{key}={value}" if not key.startswith("~") else key)
    return kept


def run_name(overrides: Iterable[str], *, default: str) -> str:
    """`model.activation=glu,seed=1112`; `default` (the task name) for a run without overrides."""
    return ",".join(clean_overrides(overrides)) or default


def job_dirname(num: int | str, overrides: Iterable[str]) -> str:
    """Folder of one sweep job: its number, then what it changes (`3_model.activation=glu,seed=2`).

    The number keeps folders unique (an Optuna search may draw a point twice) and in launch order.
    """
    name = re.sub(r"[^\w.,=+-]", "-", ",".join(clean_overrides(overrides)))
    if len(name) > MAX_DIRNAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[: MAX_DIRNAME - 9]}-{digest}"
    return f"{num}_{name}" if name else str(num)


def folder_name(key: str, value: Any) -> str:
    """`value` when it names one folder inside the log folder; else the process stops with an error.

    Names from the command line become path parts (`task_name` in `hydra.run.dir`): `../x`, `a/b`
    or an absolute path would put a run outside `paths.log_dir`. Hydra resolves its run folder
    before any job code runs and prints a resolver's exception as a traceback, so this exits
    (`SystemExit`, status 1) with one line instead.
    """
    name = str(value)
    if not name or name in (".", "..") or not re.fullmatch(r"[\w.,=+-]+", name):
        raise SystemExit(
            f"error: {key}={name!r} cannot name a folder inside paths.log_dir; use letters, digits "
            f"and . _ - (no /, no '..'), e.g. {key}=my_study"
        )
    return name


#: most suffixes tried for one run folder name before giving up
MAX_FOLDER_SUFFIX = 1000


def new_folder(path: Any) -> str:
    """`path`, created now and held by this run alone; `path_2`, `path_3`, ... when another run has it.

    Run and sweep folders are named to the second, so two runs started in the same second asked
    for one folder and wrote into it together. `os.mkdir` is atomic (also on NFS), so exactly one
    process gets each name. Hydra resolves the folder on the job's config and caches the value
    there (and copies the cache into each sweep job's config), so one run makes one folder.
    """
    base = Path(str(path))
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, MAX_FOLDER_SUFFIX + 1):
        candidate = base if n == 1 else base.with_name(f"{base.name}_{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return str(candidate)
    raise SystemExit(
        f"error: {base} and {MAX_FOLDER_SUFFIX - 1} numbered folders beside it exist already; "
        "move old runs away or give hydra.run.dir=PATH"
    )


def run_tags(tags: Iterable[str], overrides: Iterable[str]) -> list[str]:
    """The experiment's tags plus one per override of this run, so W&B can filter on each axis."""
    out = [str(t) for t in tags]
    for item in clean_overrides(overrides):
        tag = item[:64]  # W&B's limit on a tag
        if tag not in out:
            out.append(tag)
    return out


def _job_overrides() -> list[str]:
    """This job's task overrides when Hydra runs it; empty under the compose API."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def _resolve_run_name(default: str) -> str:
    return run_name(_job_overrides(), default=default)


def _resolve_run_tags(tags: Any) -> list[str]:
    values = OmegaConf.to_container(tags) if OmegaConf.is_config(tags) else list(tags or [])
    return run_tags(values, _job_overrides())


def _resolve_job_dirname(num: Any, overrides: Any) -> str:
    values = OmegaConf.to_container(overrides) if OmegaConf.is_config(overrides) else list(overrides)
    return job_dirname(num, values)


def register_resolvers() -> None:
    """`${butd.run_name:NAME}`, `${butd.run_tags:${tags}}`, `${butd.job_dirname:NUM,OVERRIDES}`,
    `${butd.folder_name:KEY,VALUE}` and `${butd.new_folder:PATH}`."""
    for name, fn in {
        "butd.run_name": _resolve_run_name,
        "butd.run_tags": _resolve_run_tags,
        "butd.job_dirname": _resolve_job_dirname,
        "butd.folder_name": folder_name,
    }.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
    if not OmegaConf.has_resolver("butd.new_folder"):  # cached: resolved again, the same folder
        OmegaConf.register_new_resolver("butd.new_folder", new_folder, use_cache=True)


register_resolvers()
