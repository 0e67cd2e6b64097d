"""Reading runs back from their folders, without W&B and without torch.

A run folder is one that Hydra recorded: it holds `.hydra/overrides.yaml`. Its state:

- `finished`: `metrics.json` with a best `val/score` (written at the end of a fit);
- `failed`: `failure.json` (a multirun job that raised; see `butd.config.entry`);
- `unfinished`: neither, e.g. still running or killed; the CSV log says how far it got;
- `unreadable`: a record that cannot be read (damaged JSON or YAML), or that holds what butd never
  writes (a score that is not a finite number, a value shaped like an interpolation); listed with
  its path and why;
- `resumed`: a run that a later run resumed (`ckpt_path=...`): the later run's `metrics.json`
  names it in its `lineage` and holds its epochs, so the two count as one run.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from butd.config.convergence import ConvergenceRule
from butd.config.naming import clean_overrides, split_override
from butd.config.plain import looks_like_interpolation

OVERRIDES = Path(".hydra") / "overrides.yaml"
CONFIG = Path(".hydra") / "config.yaml"
METRICS = "metrics.json"
FAILURE = "failure.json"  # butd.training.sweep.FAILURE_FILE, without importing Hydra's runtime here
CSV_LOG = Path("csv") / "metrics.csv"


@dataclass
class Run:
    """One run folder and what its records say."""

    path: Path
    overrides: list[str]
    status: str  # finished | failed | unfinished | unreadable | resumed
    metrics: dict[str, Any] = field(default_factory=dict)
    #: why a run is not finished: the error, or how far its CSV log got
    detail: str = ""
    #: the composed config's seed (`.hydra/config.yaml`), read as plain data
    config_seed: str | None = None
    #: the composed config (`.hydra/config.yaml`) as plain data, read once (`setting`)
    _config: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.metrics.get("history") or [])

    @property
    def seed(self) -> str | None:
        """The run's seed: its override, else the composed config's."""
        for item in self.overrides:
            key, value = split_override(item)
            if key == "seed":
                return value
        return self.config_seed

    def best_row(self) -> dict[str, Any]:
        """The history row of the best epoch (where per-epoch metrics such as accuracy live)."""
        best = self.metrics.get("best_epoch")
        return next((r for r in self.history if r.get("epoch") == best), {})

    def value(self, key: str) -> float | None:
        """A metric of the best epoch: top level of metrics.json first, else the best epoch's row."""
        value = self.metrics.get(key)
        if value is None:
            value = self.best_row().get(key)
        return None if value is None else float(value)

    def mean_over_epochs(self, key: str) -> float | None:
        values = [float(r[key]) for r in self.history if r.get(key) is not None]
        return sum(values) / len(values) if values else None

    @property
    def convergence(self) -> dict[str, Any]:
        """`converged` and `converged_epoch` as the run recorded them; for a run recorded before
        the rule existed, the default rule applied to its history (`computed`: True)."""
        if "converged" in self.metrics:
            return {
                "converged": bool(self.metrics["converged"]),
                "converged_epoch": self.metrics.get("converged_epoch"),
                "computed": False,
            }
        return {**ConvergenceRule().assess(self.history), "computed": True}

    def setting(self, dotted: str) -> Any:
        """A value of the run's composed config (`.hydra/config.yaml`), read as plain YAML (nothing in
        it is resolved), e.g. `trainer.max_epochs`; None where absent."""
        if self._config is None:
            config = self.path / CONFIG
            loaded = _yaml(config) if config.is_file() else None
            self._config = loaded if isinstance(loaded, dict) else {}
        node: Any = self._config
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node


def _job_number(path: Path) -> int:
    """Hydra's job number from the folder name (`3_model...` or `3`), for launch order."""
    head = path.name.split("_", 1)[0]
    return int(head) if head.isdigit() else -1


def find_run_dirs(root: Path) -> list[Path]:
    """Every folder at or under `root` that Hydra recorded as a run, in launch order."""
    dirs = {p.parent.parent for p in root.glob(f"**/{OVERRIDES}")}
    return sorted(dirs, key=lambda p: (str(p.parent), _job_number(p), p.name))


def _csv_progress(path: Path) -> str:
    """How far a run's CSV log got: `2 validated epochs, last val/score 41.20`."""
    log = path / CSV_LOG
    if not log.is_file():
        return "no metrics.json and no CSV log: not started, or killed before its first epoch"
    with log.open(newline="") as f:
        scores = [row for row in csv.DictReader(f) if row.get("val/score")]
    if not scores:
        return "no metrics.json; the CSV log has no validated epoch yet"
    last = scores[-1]
    return (
        f"no metrics.json; the CSV log has {len(scores)} validated epochs, "
        f"last val/score {float(last['val/score']):.2f}"
    )


def read_run(path: Path) -> Run:
    """The run in `path`; an unreadable record makes an `unreadable` run that names the file."""
    try:
        return _read_run(path)
    except (OSError, ValueError, yaml.YAMLError) as err:  # JSONDecodeError is a ValueError
        return Run(path, [], "unreadable", detail=f"cannot read its record: {err}")


def _yaml(path: Path) -> Any:
    """A YAML file as plain data (never an OmegaConf node: nothing in it is resolved)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _read_run(path: Path) -> Run:
    run = _read_records(path)
    config = path / CONFIG
    if config.is_file():
        composed = _yaml(config)
        run._config = composed if isinstance(composed, dict) else {}
        seed = run._config.get("seed")
        if isinstance(seed, str) and looks_like_interpolation(seed):
            raise ValueError(f"{config}: seed={seed!r} looks like an interpolation; run records are data")
        run.config_seed = None if seed is None else str(seed)
    return run


def _read_records(path: Path) -> Run:
    listed = _yaml(path / OVERRIDES) or []
    if not isinstance(listed, list):
        raise ValueError(f"{path / OVERRIDES} holds a {type(listed).__name__}, not a list of overrides")
    overrides = [str(o) for o in listed]
    failure = path / FAILURE
    if failure.is_file():
        record = _json(failure)
        message = str(record.get("message", "")).strip().splitlines()
        detail = f"{record.get('error', 'error')}: {message[0] if message else ''}"
        return Run(path, overrides, "failed", detail=detail)
    metrics_file = path / METRICS
    if metrics_file.is_file():
        metrics = _json(metrics_file)
        _check_metrics(metrics, metrics_file)
        if metrics.get("val/score") is not None:
            return Run(path, overrides, "finished", metrics=metrics)
        return Run(path, overrides, "unfinished", metrics=metrics, detail="metrics.json has no val/score")
    return Run(path, overrides, "unfinished", detail=_csv_progress(path))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_metrics(metrics: dict[str, Any], path: Path) -> None:
    """The values a report computes with are numbers, as butd writes them, and the scores it
    averages (`val/*`, `test/*`, at the top level and in each epoch's row) finite: a NaN or an
    infinity there would reach `statistics`. Anything else is a ValueError naming the file and key,
    and the run is listed as unreadable."""

    def check(key: Any, value: Any, where: str) -> None:
        if value is None or not isinstance(key, str):
            return
        if not _number(value) or (key.startswith(("val/", "test/")) and not math.isfinite(value)):
            raise ValueError(f"{path}: {where}{key}={value!r} is not a finite number")

    for key, value in metrics.items():
        if isinstance(key, str) and key.startswith(("val/", "test/", "train/")):
            check(key, value, "")
    for key in ("best_epoch", "epoch", "num_parameters"):
        value = metrics.get(key)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError(f"{path}: {key}={value!r} is not an integer")
    history = metrics.get("history") or []
    lineage = metrics.get("lineage") or []
    if not isinstance(history, list) or not isinstance(lineage, list):
        raise ValueError(f"{path}: history and lineage must be lists")
    if not all(isinstance(d, str) for d in lineage):
        raise ValueError(f"{path}: lineage holds something other than folder names")
    for i, row in enumerate(history):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: history[{i}] is not an epoch's record")
        for key, value in row.items():
            check(key, value, f"history[{i}].")


def _json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`; a damaged file is a ValueError that names it."""
    try:
        record = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(record, dict):
        raise ValueError(f"{path} holds a {type(record).__name__}, not a JSON object")
    return record


def read_runs(roots: list[Path]) -> list[Run]:
    """The runs under each root, in order; a run reachable from two roots is read once, and a
    run that a later one resumed is marked `resumed` (see `mark_resumed`)."""
    seen: set[Path] = set()
    runs = []
    for root in roots:
        for path in find_run_dirs(root):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                runs.append(read_run(path))
    return mark_resumed(runs)


def mark_resumed(runs: list[Run]) -> list[Run]:
    """Mark each run whose folder is in another run's `lineage` (before that run's own) as
    `resumed`: its epochs are in the resuming run's record, and it is not a second seed."""
    successor: dict[Path, Path] = {}
    for run in runs:
        lineage = [Path(d) for d in run.metrics.get("lineage") or []]
        for earlier in lineage[:-1]:
            successor[earlier.resolve()] = run.path
    for run in runs:
        later = successor.get(run.path.resolve())
        if later is not None and later.resolve() != run.path.resolve():
            run.status, run.detail = "resumed", f"resumed by {later}"
    return runs


#: overrides that are not part of a configuration: the seed is what a configuration's runs vary
REPLICATE_KEYS = ("seed",)


@dataclass
class RunGroup:
    """Runs that share every override but the seed."""

    settings: dict[str, str]
    runs: list[Run]

    def values(self, key: str) -> list[float]:
        return [v for v in (r.value(key) for r in self.runs) if v is not None]

    def by_seed(self, key: str) -> dict[str, float]:
        """`key`'s value per run, keyed by seed (by folder where seeds are unknown or repeat, so
        that such runs are never paired with another configuration's)."""
        seeds = [r.seed for r in self.runs]
        unique = None not in seeds and len(set(seeds)) == len(seeds)
        out = {}
        for run, seed in zip(self.runs, seeds, strict=True):
            value = run.value(key)
            if value is not None:
                out[seed if unique else str(run.path)] = value
        return out

    @property
    def converged(self) -> int:
        """How many of the runs converged (`Run.convergence`)."""
        return sum(r.convergence["converged"] for r in self.runs)

    @property
    def all_converged(self) -> bool:
        return self.converged == len(self.runs)

    @property
    def best_epochs(self) -> list[int]:
        return [int(r.metrics["best_epoch"]) for r in self.runs if r.metrics.get("best_epoch") is not None]

    def mean_std(self, key: str) -> tuple[float | None, float | None]:
        values = self.values(key)
        if not values:
            return None, None
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None

    def mean_over_runs(self, per_run: list[float | None]) -> float | None:
        values = [v for v in per_run if v is not None]
        return statistics.fmean(values) if values else None

    @property
    def num_parameters(self) -> int | None:
        counts = {r.metrics.get("num_parameters") for r in self.runs} - {None}
        return int(next(iter(counts))) if len(counts) == 1 else None

    @property
    def epoch_seconds(self) -> float | None:
        return self.mean_over_runs([r.mean_over_epochs("epoch_seconds") for r in self.runs])

    @property
    def questions_per_s(self) -> float | None:
        return self.mean_over_runs([r.mean_over_epochs("train/questions_per_s") for r in self.runs])

    @property
    def seeds(self) -> list[str]:
        return [r.seed or "?" for r in self.runs]


def settings_of(run: Run) -> dict[str, str]:
    """What a run's configuration is: its overrides less the noise and the seed (experiment kept)."""
    pairs = (
        split_override(o) for o in clean_overrides(run.overrides, drop=REPLICATE_KEYS, keep=["experiment"])
    )
    return dict(pairs)


def group_runs(runs: list[Run]) -> list[RunGroup]:
    """Finished runs grouped by configuration, in the order their first run was launched."""
    groups: dict[tuple[tuple[str, str], ...], RunGroup] = {}
    for run in runs:
        if run.status != "finished":
            continue
        settings = settings_of(run)
        key = tuple(sorted(settings.items()))
        groups.setdefault(key, RunGroup(settings, [])).runs.append(run)
    return list(groups.values())
