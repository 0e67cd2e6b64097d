"""Resuming a run: which checkpoint (`ckpt_path=last` or a path), and whether it fits this run's
model, data and seed, said before any data is read; `resume_overrides` names what may differ."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from butd.config.debias import DebiasConfig
from butd.config.model import ModelConfig
from butd.errors import CheckpointError, ConfigError
from butd.training.callback_states import check_callback_states
from butd.training.checkpoint_io import load_weights_only

log = logging.getLogger(__name__)


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
