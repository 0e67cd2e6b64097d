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
import math
import os
import re
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint

from butd.config.debias import DebiasConfig
from butd.config.model import ModelConfig
from butd.errors import CheckpointError, ConfigError, disk_full

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
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        full = disk_full(err)
        if full:
            raise _disk_full_error(path, full) from err
        raise
    _fsync_dir(path.parent)


def _disk_full_error(path: Path, words: str) -> CheckpointError:
    """The message for a checkpoint that did not fit: what is free, what was kept, how to go on."""
    free = shutil.disk_usage(path.parent).free
    kept = sorted(p.name for p in path.parent.glob("*.ckpt"))
    previous = f"the previous {path.name} is intact; " if path.is_file() else ""
    resume = path if path.is_file() else path.parent / "last.ckpt"
    hint = (
        f"then resume with ckpt_path={resume}"
        if resume.is_file()
        else "then run again (no checkpoint of this run was written yet)"
    )
    return CheckpointError(
        f"disk full: {words} while writing checkpoint {path} ({free:,} bytes free there). Nothing "
        f"half-written was left: {previous}checkpoints kept in {path.parent}: {kept or 'none'}. Free "
        f"space (or point paths.log_dir at a larger disk), {hint}"
    )


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


class UnsafeCheckpointError(CheckpointError):
    """A file that asks to import code when loaded (a crafted or foreign pickle): never loaded."""


def _weights_only_refusal(path: Path, err: BaseException) -> CheckpointError | None:
    """torch's refusal of a file that holds more than tensors and plain values, as a butd message.

    torch's own message advises loading with `weights_only=False`; butd never does, since such a
    file can run code when loaded, so the advice is dropped and the offending global kept.
    """
    text = str(err)
    found = re.search(r"(?:Unsupported global|GLOBAL|Trying to call reduce)[^\n]*", text)
    if "Weights only load failed" not in text or found is None:
        return None  # damaged or not a pickle at all: `_unreadable` says so
    reason = found.group(0).strip()[:200]
    return UnsafeCheckpointError(
        f"refused to load {path}: it holds objects beyond tensors and plain values ({reason}). "
        "butd loads checkpoints with weights_only=True, because such a file can run code when "
        "loaded; use a checkpoint written by butd, or convert the original's with "
        "`python -m butd.import_reference`"
    )


def load_weights_only(path: str | Path, map_location: Any = "cpu") -> Any:
    """`torch.load` that builds tensors and plain values only, whatever the torch version or the
    `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD` variable say (an explicit `weights_only=True` wins over it)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch reports a refused or damaged file in many ways
        raise (_weights_only_refusal(path, err) or _unreadable(path, err)) from err


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
            # never anything but weights_only: a resumed checkpoint must not run code either
            checkpoint = super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except Exception as err:  # torch reports a damaged file in many ways
            raise (_weights_only_refusal(Path(path), err) or _unreadable(Path(path), err)) from err
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise _unreadable(Path(path), ValueError("no 'state_dict' entry: not a Lightning checkpoint"))
        check_callback_states(checkpoint, Path(path))
        return checkpoint


# ---------------------------------------------------------------------------------------------
# Callback states: restored only as butd writes them


#: the callbacks whose state butd writes into a checkpoint, by Lightning's state key (the class
#: name, followed for a ModelCheckpoint by its settings); any other state is dropped on load
BUTD_STATES = ("RunCheckpoint", "MetricsJSON", "RunStats", "RNGState")


def _finite(value: Any) -> bool:
    """A real, finite number (a Python number or a one-element tensor); booleans are not scores."""
    if torch.is_tensor(value):
        return value.numel() == 1 and not value.dtype.is_complex and bool(torch.isfinite(value).all())
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _state_problem(name: str, state: Any) -> str | None:
    """What in one butd callback's saved state butd would not have written, or None."""
    if not isinstance(state, dict):
        return f"is a {type(state).__name__}, not a mapping"
    if name == "RunCheckpoint":
        dirpath = state.get("dirpath")
        best = state.get("best_k_models", {})
        if dirpath is not None and not isinstance(dirpath, str):
            return f"dirpath={dirpath!r} is not a folder name"
        if not isinstance(best, dict):
            return "best_k_models is not a mapping"
        for path, score in best.items():
            if not isinstance(path, str) or not path.endswith(".ckpt") or dirpath is None:
                return f"best_k_models names {path!r}, not a checkpoint file"
            if os.path.normpath(os.path.dirname(path)) != os.path.normpath(dirpath):
                return f"best_k_models names {path!r}, outside its checkpoint folder {dirpath}"
            if score is not None and not _finite(score):
                return f"best_k_models gives {path!r} the score {score!r}, not a finite number"
        for key in ("best_model_score", "current_score"):
            value = state.get(key)
            if value is not None and not _finite(value):
                return f"{key}={value!r} is not a finite number"
        kth = state.get("kth_value")  # +-inf until save_top_k checkpoints exist
        if kth is not None and not (_finite(kth) or (torch.is_tensor(kth) and bool(torch.isinf(kth).all()))):
            return f"kth_value={kth!r} is not a number"
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            value = state.get(key, "")
            if not isinstance(value, str) or (
                value and os.path.normpath(os.path.dirname(value)) != os.path.normpath(dirpath or "")
            ):
                return f"{key}={value!r} is not a file of its checkpoint folder {dirpath}"
    elif name == "MetricsJSON":
        history, lineage = state.get("history", []), state.get("lineage", [])
        if not isinstance(history, list) or not isinstance(lineage, list):
            return "history or lineage is not a list"
        if not all(isinstance(d, str) for d in lineage):
            return "lineage holds something other than folder names"
        for i, row in enumerate(history):
            if not isinstance(row, dict) or not isinstance(row.get("epoch"), int):
                return f"history[{i}] is not an epoch's record"
            # a number each (a validation on NaN features logs a NaN loss, and butd records it)
            bad = next((k for k, v in row.items() if not isinstance(k, str) or not _number(v)), None)
            if bad is not None:
                return f"history[{i}][{bad!r}]={row[bad]!r} is not a number"
    elif name == "RunStats":
        best = state.get("best")
        if best is not None and not _finite(best):
            return f"best={best!r} is not a finite number"
    elif name == "RNGState" and state:
        numpy_state, python_state = state.get("numpy"), state.get("python")
        if (
            not torch.is_tensor(state.get("torch"))
            or state["torch"].dtype != torch.uint8
            or tuple(state["torch"].shape) != tuple(torch.get_rng_state().shape)
            or not isinstance(numpy_state, list | tuple)
            or len(numpy_state) != 5
            or not torch.is_tensor(numpy_state[1])
            or numpy_state[1].numel() != 624
            or not isinstance(python_state, list | tuple)
            or len(python_state) != 3
            or not isinstance(python_state[1], list | tuple)
            or len(python_state[1]) != 625
            or not all(isinstance(x, int) for x in python_state[1])
        ):
            return "is not the random number generators' states"
    return None


def _unrecorded_score(key: str, states: dict[str, Any]) -> str | None:
    """A best score of a RunCheckpoint state that the run's own history (MetricsJSON) never
    recorded for its monitor, or None: butd writes the two together, so a score found in one only
    was put there by hand (and would stand as a best that the run never beats)."""
    monitor = re.search(r"'monitor': '([^']+)'", key)
    metrics = next((v for k, v in states.items() if str(k).split("{", 1)[0] == "MetricsJSON"), None)
    if monitor is None or not isinstance(metrics, dict):
        return None
    recorded = {r.get(monitor.group(1)) for r in metrics.get("history", []) if isinstance(r, dict)}
    for path, score in (states[key].get("best_k_models") or {}).items():
        if score is not None and float(score) not in recorded:
            return (
                f"best_k_models gives {path!r} the {monitor.group(1)} {float(score)!r}, which the run's "
                "history never recorded"
            )
    return None


def check_callback_states(checkpoint: dict[str, Any], path: Path) -> None:
    """Keep only the callback states butd writes, each as butd writes it, or refuse the file.

    A checkpoint's callback states decide what a resumed run does with files (the best
    checkpoints it links into its folder, and may later delete) and what it records as its best
    score, so a state that names a file outside its checkpoint folder, a score that is not a finite
    number or a value of the wrong type is refused with one line; states of callbacks butd does not
    have are dropped. `RunCheckpoint.load_state_dict` then reads the best checkpoints by name from
    the folder of the checkpoint being resumed.
    """
    data_state = checkpoint.get("VQADataModule")  # where the training order stood
    if data_state is not None:
        order = data_state.get("train_order") if isinstance(data_state, dict) else "?"
        if order is not None and not (
            isinstance(order, dict)
            and set(order) == {"epoch", "batches_done"}
            and all(map(_count, order.values()))
        ):
            raise CheckpointError(
                f"refused to resume from {path}: its data module state train_order={order!r} is not "
                "a position in the training order; butd never writes that (an altered or foreign file)"
            )
    states = checkpoint.get("callbacks")
    if states is None:
        return
    if not isinstance(states, dict):
        raise CheckpointError(f"refused to resume from {path}: its callback states are not a mapping")
    for key in list(states):
        name = next((n for n in BUTD_STATES if isinstance(key, str) and key.split("{", 1)[0] == n), None)
        if name is None:
            log.info("%s: the state of %r is not butd's; it is not restored", path, key)
            del states[key]
            continue
        problem = _state_problem(name, states[key]) or _unrecorded_score(key, states)
        if problem:
            raise CheckpointError(
                f"refused to resume from {path}: its {name} state {problem}; butd never writes that "
                "(an altered or foreign file). Resume from a checkpoint butd wrote, or start afresh "
                "with ckpt_path=null"
            )


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


class ResumeOverrides(pl.Callback):
    """Applies the optimizer arguments `resume_overrides` changed over the optimizer state a resume
    restores (which would otherwise bring back the checkpoint's values, its learning rate included).

    `changes`: records of `allowed_changes` (keys `optim.optimizer.ARG`)."""

    def __init__(self, *, changes: list[dict[str, Any]]) -> None:
        self.changes = list(changes)

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        for change in self.changes:
            if not change["key"].startswith(RESUME_OVERRIDABLE):
                continue  # optim.clip_grad_norm: the trainer applies the command's
            arg = change["key"][len(RESUME_OVERRIDABLE) :]
            for state in checkpoint.get("optimizer_states") or []:
                for group in state.get("param_groups", []):
                    group[arg] = change["now"]
            log.info(
                "resumed with %s=%r (%r in the checkpoint)",
                change["key"],
                change["now"],
                change["checkpoint"],
            )


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


#: data settings that change what a resumed run computes (the cache itself is compared by its
#: vocabulary and answers); paths, workers and the feature store may change between runs
RESUME_DATA_KEYS: tuple[str, ...] = (
    # which data set and which of its questions train and select: another set with the same
    # words and answers (synthetic and synthetic_cp) would otherwise resume unnoticed
    "name",
    "holdout_fraction",
    "holdout_seed",
    "changing_priors",
    "synthetic",
    "test_split",
    "boxes",
    "use_boxes",
    "max_question_len",
    "train_splits",
    "val_split",
    "extra_train",
    "batch_size",
    "targets",
    "normalize_features",
)


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(f"{prefix}.{k}", v))
        return out
    return {prefix: value}


#: what `resume_overrides` may name: the optimizer's arguments (the divergence advice's lower lr),
#: which a resumed run applies over the optimizer state it restores
RESUME_OVERRIDABLE = "optim.optimizer."


def check_resume_overrides(keys: Any) -> list[str]:
    """`resume_overrides` as a list of keys, each an optimizer argument (`optim.optimizer.lr`) or
    `optim.clip_grad_norm`."""
    keys = [keys] if isinstance(keys, str) else list(keys or [])
    for key in keys:
        arg = str(key)[len(RESUME_OVERRIDABLE) :]
        if str(key) == "optim.clip_grad_norm":
            continue
        if not str(key).startswith(RESUME_OVERRIDABLE) or not arg or arg.startswith("_") or "." in arg:
            raise ConfigError(
                f"resume_overrides names {key!r}; a resume may change only the optimizer's arguments "
                "and optim.clip_grad_norm, e.g. resume_overrides=[optim.optimizer.lr] (the model, data "
                "and seed must match)"
            )
    return [str(k) for k in keys]


def _differences(
    checkpoint: dict[str, Any],
    *,
    hparams: dict[str, Any],
    metadata: dict[str, Any],
    data_config: dict[str, Any],
) -> list[tuple[str | None, Any, Any, str]]:
    """(key, value in the checkpoint, value now, phrase) for each difference; key None for those
    no override can allow (vocabulary, answers)."""
    diffs: list[tuple[str | None, Any, Any, str]] = []
    saved_hparams = dict(checkpoint.get("hyper_parameters") or {})
    if isinstance(saved_hparams.get("model"), dict):  # a model key added since: its default was the model
        saved_hparams["model"] = ModelConfig().to_dict() | saved_hparams["model"]
    if isinstance(saved_hparams.get("debias"), dict):  # likewise a debias key added since (`mode`)
        saved_hparams["debias"] = DebiasConfig().to_dict() | saved_hparams["debias"]
    saved = _flat("", {k: v for k, v in saved_hparams.items() if k != "compile"})
    now = _flat("", {k: v for k, v in hparams.items() if k != "compile"})
    for key in sorted(set(saved) | set(now)):
        if saved.get(key) != now.get(key):
            name = key.lstrip(".").replace("optimizer.", "optim.optimizer.", 1)
            phrase = f"{name} ({saved.get(key)!r} in the checkpoint, {now.get(key)!r} now)"
            diffs.append((name, saved.get(key), now.get(key), phrase))
    if not diffs:
        diffs += [(None, None, None, p) for p in _debias_parameter_differences(checkpoint, hparams)]
    meta = checkpoint.get("butd") or {}
    if not meta.get("vocab") or not meta.get("answers"):
        diffs.append(
            (
                None,
                None,
                None,
                "vocabulary and answers (the checkpoint has none, so its labels cannot be checked)",
            )
        )
    else:
        if meta["vocab"] != metadata.get("vocab"):
            diffs.append(
                (
                    None,
                    None,
                    None,
                    "vocabulary (the checkpoint's words or their order differ from the cache's)",
                )
            )
        if meta["answers"] != metadata.get("answers"):
            same = sorted(meta["answers"]) == sorted(metadata.get("answers") or [])
            what = "the same answers in another order" if same else "another answer list"
            diffs.append((None, None, None, f"answers ({what})"))
    # recorded since: a checkpoint from before has no value to compare
    for key, name in (("seed", "seed"), ("clip_grad_norm", "optim.clip_grad_norm")):
        if key in meta and meta[key] != metadata.get(key):
            old, now_value = meta[key], metadata.get(key)
            diffs.append((name, old, now_value, f"{name} ({old!r} in the checkpoint, {now_value!r} now)"))
    saved_data = meta.get("data_config") or {}
    for key in RESUME_DATA_KEYS:
        if key in saved_data and saved_data[key] != data_config.get(key):
            phrase = f"data.{key} ({saved_data[key]!r} in the checkpoint, {data_config.get(key)!r} now)"
            diffs.append((f"data.{key}", saved_data[key], data_config.get(key), phrase))
    return diffs


def _debias_parameter_differences(checkpoint: dict[str, Any], hparams: dict[str, Any]) -> list[str]:
    """A debias method's parameters saved by an earlier definition of the same method (e.g. RUBi's
    one-hidden-layer branch, bias product without its learned smoothing): Lightning would fail to
    load them, so they are named here instead."""
    from butd.training.debias import build_debias

    debias = DebiasConfig.from_dict(hparams.get("debias"))
    loss = build_debias(
        debias,
        num_hid=ModelConfig.from_dict(hparams["model"]).num_hid,
        num_answers=hparams["num_answers"],
        v_dim=hparams.get("v_dim"),
    )
    now = {f"debias.{k}" for k in loss.state_dict()}
    saved = {k for k in checkpoint.get("state_dict") or {} if k.startswith("debias.")}
    if saved == now:
        return []
    return [
        f"debias={debias.name}'s parameters (the checkpoint's {sorted(saved) or 'none'} against "
        f"{sorted(now) or 'none'} now: it was made by an earlier definition of the method)"
    ]


def resume_differences(
    checkpoint: dict[str, Any],
    *,
    hparams: dict[str, Any],
    metadata: dict[str, Any],
    data_config: dict[str, Any],
    allowed: tuple[str, ...] | list[str] = (),
) -> list[str]:
    """What differs between a checkpoint and the run about to resume from it, one phrase each.

    `hparams`, `metadata` and `data_config`: the fresh module's hyper-parameters and metadata and
    the command's data section (unresolved, as checkpoints store it). `allowed`: keys the command
    lets differ (`resume_overrides`). Empty when they fit.
    """
    found = _differences(checkpoint, hparams=hparams, metadata=metadata, data_config=data_config)
    return [phrase for key, _, _, phrase in found if key not in allowed]


def allowed_changes(
    checkpoint: dict[str, Any], *, allowed: tuple[str, ...] | list[str], **expected: Any
) -> list[dict[str, Any]]:
    """The differences `resume_overrides` allowed, as records: key, value in the checkpoint, now."""
    found = _differences(checkpoint, **expected)
    return [{"key": key, "checkpoint": old, "now": new} for key, old, new, _ in found if key in allowed]


def epochs_done(checkpoint: dict[str, Any]) -> int:
    """Epochs whose training and validation the checkpoint includes."""
    try:
        return int(checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError):
        return 0


def choose_resume(
    ckpt_path: str | None,
    *,
    log_dir: str | Path,
    task_name: str,
    max_epochs: int | None,
    allowed: tuple[str, ...] | list[str] = (),
    changes: list[dict[str, Any]] | None = None,
    **expected: Any,
) -> str | None:
    """The checkpoint to resume from, checked against the run before Lightning loads it.

    `ckpt_path=last`: the newest `last.ckpt` of the task whose settings match (`expected`: the
    keyword arguments of `resume_differences`); the others are skipped and counted. A path: that
    checkpoint, refused with one line naming what differs. A finished run is refused with the
    override that extends it.
    """
    path = resolve_ckpt_path(ckpt_path, log_dir=log_dir, task_name=task_name)
    if path is None:
        return None
    checkpoint = None
    if str(ckpt_path) == "last":
        found = _last_checkpoints(log_dir, task_name)
        skipped: list[tuple[Path, list[str]]] = []
        for candidate in found:
            # an unreadable one stops the search: falling back past it would resume older work silently
            checkpoint = load_weights_only(candidate)
            diffs = resume_differences(checkpoint, allowed=allowed, **expected)
            if not diffs:
                path = str(candidate)
                break
            skipped.append((candidate, diffs))
        else:
            newest, diffs = skipped[0]
            raise ConfigError(
                f"ckpt_path=last: none of the {len(found)} last.ckpt under {Path(log_dir, task_name)} "
                f"was made with this command's settings; the newest, {newest}, differs in: "
                f"{'; '.join(diffs)}. Give ckpt_path=PATH, or start afresh with ckpt_path=null"
            )
        note = f" (skipped {len(skipped)} newer made with other settings)" if skipped else ""
        log.info("ckpt_path=last: resuming from %s%s", path, note)
    if checkpoint is None:  # a path given (`last` loaded its match above)
        checkpoint = load_weights_only(path)
    check_callback_states(checkpoint, Path(path))  # said before any data is read
    diffs = resume_differences(checkpoint, allowed=allowed, **expected)
    if diffs:
        raise CheckpointError(
            f"cannot resume from {path}: it differs from this run in {'; '.join(diffs)}. Resume with the "
            "settings it was made with (a new optimizer argument, e.g. a lower learning rate, with "
            "resume_overrides=[optim.optimizer.lr]), or start afresh with ckpt_path=null"
        )
    if changes is not None:
        changes += [
            {**c, "checkpoint_path": str(path)}
            for c in allowed_changes(checkpoint, allowed=allowed, **expected)
        ]
    done = epochs_done(checkpoint)
    if max_epochs is not None and max_epochs >= 0 and done >= max_epochs:
        raise CheckpointError(
            f"cannot resume from {path}: it has finished its {done} epochs "
            f"(trainer.max_epochs={max_epochs}); to train it on, give a larger trainer.max_epochs, "
            f"e.g. trainer.max_epochs={done + max_epochs}"
        )
    return path


def resolve_ckpt_path(ckpt_path: str | None, *, log_dir: str | Path, task_name: str) -> str | None:
    """`last` means the newest `last.ckpt` among this task's earlier runs; a path must exist."""
    if ckpt_path is None:
        return None
    if str(ckpt_path) == "last":
        found = _last_checkpoints(log_dir, task_name)
        if not found:
            raise ConfigError(
                f"ckpt_path=last: no checkpoints/last.ckpt under {Path(log_dir, task_name)}; "
                "give the checkpoint's path instead"
            )
        return str(found[0])
    if not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: no such file")
    return str(ckpt_path)


def _last_checkpoints(log_dir: str | Path, task_name: str) -> list[Path]:
    """This task's `last.ckpt` files, newest first."""
    return sorted(
        Path(log_dir, task_name).glob("**/checkpoints/last.ckpt"),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
