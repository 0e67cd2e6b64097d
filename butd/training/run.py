"""The steps of one training run (`butd.train`), each from the typed config (`RunConfig`) that
`validate_train_config` made once: start (machine, seed), the resume plan settled before any
data is read, the module and data, the trainer, the test split, and what stopped a run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from butd.config.data import DataConfig
from butd.config.entry import in_multirun, job_dir, record_failure
from butd.config.run_folder import check_resumed_folder
from butd.data.datamodule import VQADataModule
from butd.errors import UserError
from butd.training import sweep
from butd.training.callbacks.metrics_json import MetricsJSON
from butd.training.callbacks.resume_overrides import ResumeOverrides
from butd.training.initialise import initialise_weights
from butd.training.machine import describe, machine_line
from butd.training.module import VQAModule
from butd.training.resume import check_resume_overrides, choose_resume, resolve_ckpt_path
from butd.training.signals import InterruptCheckpoint, interrupted
from butd.training.slurm import trainer_setup
from butd.training.validate import RunConfig

log = logging.getLogger(__name__)


def start(cfg: DictConfig, run: RunConfig) -> dict[str, Any]:
    """Say the machine and any warning about the split selection, seed everything; returns the
    machine's description (for metrics.json and the loggers)."""
    machine = describe(accelerator=str(cfg.trainer.get("accelerator")), devices=cfg.trainer.get("devices"))
    log.info("%s", machine_line(machine))
    warning = selection_warning(run.data)
    if warning:
        log.warning(warning)
    pl.seed_everything(run.seed, workers=True, verbose=bool(cfg.get("verbose", False)))
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")  # TF32 matmuls where a run is fp32 on a GPU
    return machine


@dataclass
class ResumePlan:
    """What is settled about resuming before any data is read: the keys `resume_overrides` lets
    differ, the trainer's checkpoint IO and SLURM arguments, and a requeued SLURM job's checkpoint."""

    allowed: list[str]
    trainer_kwargs: dict[str, Any]
    requeued: str | None

    @classmethod
    def settle(cls, cfg: DictConfig, run: RunConfig) -> ResumePlan:
        allowed = check_resume_overrides(cfg.get("resume_overrides"))
        kwargs, requeued = trainer_setup(run.slurm, log_dir=cfg.paths.log_dir, task_name=cfg.task_name)
        if not requeued:  # a missing file, or no last.ckpt for the task, is said before data is read
            resolve_ckpt_path(cfg.ckpt_path, log_dir=cfg.paths.log_dir, task_name=cfg.task_name)
        return cls(allowed=allowed, trainer_kwargs=kwargs, requeued=requeued)

    def checkpoint(self, cfg: DictConfig, module: VQAModule) -> tuple[str | None, list[dict[str, Any]]]:
        """The checkpoint to resume from, checked against the command and the cache before
        Lightning loads it, and the changes `resume_overrides` allowed."""
        if self.requeued:
            return self.requeued, []
        changes: list[dict[str, Any]] = []
        path = choose_resume(
            cfg.ckpt_path,
            log_dir=cfg.paths.log_dir,
            task_name=cfg.task_name,
            max_epochs=cfg.trainer.get("max_epochs"),
            allowed=self.allowed,
            changes=changes,
            hparams=dict(module.hparams),
            metadata=module.metadata,
            data_config=module.metadata["data_config"],
        )
        if str(cfg.ckpt_path) == "last":  # `last` may have chosen another run than the folder's
            check_resumed_folder(cfg.paths.output_dir, chosen=path, overwrite=bool(cfg.get("overwrite")))
        return path, changes


def build(run: RunConfig) -> tuple[VQAModule, VQADataModule]:
    """The datamodule and a fresh module for it; the cache is prepared before (`butd.train`)."""
    datamodule = VQADataModule(run.data, shuffle_seed=run.seed)
    datamodule.prepare_data()
    info = datamodule.info
    module = VQAModule(
        model=run.model,
        debias=run.debias,
        ntoken=info.ntoken,
        v_dim=info.feature_dim,
        num_answers=info.num_answers,
        optimizer=run.optimizer,
        compile=run.compile,
    )
    initialise_weights(module.model, run.model, data=run.data, info=info)
    module.metadata = {
        "vocab": info.vocabulary().to_json(),
        "answers": info.answers(),
        "data": info.manifest.to_json(),
        # the data section as written (interpolations kept), so evaluate/predict find the cache
        "data_config": run.data_section,
        # the seed draws the weights, the batches and the dropout masks: a resume must keep it
        "seed": run.seed,
        "clip_grad_norm": run.optim.clip_grad_norm,
    }
    # every method gets the prior when the data has question types: the diagnostics read it
    types = datamodule.question_types
    if module.debias.needs_prior and types is None:
        raise UserError(
            f"debias={run.debias.name} needs each training question's question_type, and "
            f"data={run.data.name}'s splits {run.data.training_splits} have none (no annotations, "
            "or annotations without question_type). Use debias=none or debias=rubi, or a data set "
            "with question types (vqa2, vqacp2, synthetic, synthetic_cp)."
        )
    if types is not None:
        module.set_prior(torch.from_numpy(types.prior))
    log.info("model: %s; %s parameters", run.model.summary(), f"{module.num_parameters:,}")
    return module, datamodule


def instantiate_group(node: DictConfig | None) -> list[Any]:
    """Each entry of a group such as `callbacks` or `logger` that names a `_target_`."""
    if not node:
        return []
    return [instantiate(v) for v in node.values() if isinstance(v, DictConfig) and "_target_" in v]


def make_trainer(
    cfg: DictConfig,
    module: VQAModule,
    *,
    plan: ResumePlan,
    changes: list[dict[str, Any]],
    machine: dict[str, Any],
) -> tuple[pl.Trainer, MetricsJSON | None]:
    """The trainer with the config's callbacks and loggers (and the interrupt checkpoint), the
    hyper-parameters logged; returns it with the run's `metrics.json` callback, if any."""
    callbacks = instantiate_group(cfg.get("callbacks"))
    callbacks.append(InterruptCheckpoint(dirpath=Path(cfg.paths.output_dir) / "checkpoints"))
    record = next((c for c in callbacks if isinstance(c, MetricsJSON)), None)
    if changes:  # `resume_overrides`: applied over the restored optimizer state, and recorded
        callbacks.append(ResumeOverrides(changes=changes))
        if record is not None:
            record.resume_overrides = changes
    loggers = instantiate_group(cfg.get("logger"))
    kwargs = plan.trainer_kwargs | module.take_gradient_clip(cfg.trainer)  # debias.mode=iter clips itself
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **kwargs)
    hparams = OmegaConf.to_container(cfg, resolve=True)
    hparams["num_parameters"] = module.num_parameters
    hparams["machine"] = machine
    for lg in trainer.loggers:
        lg.log_hyperparams(hparams)
    if record is not None:
        record.machine = machine
    return trainer, record


def selection_warning(data_cfg: DataConfig) -> str | None:
    """What is wrong with selecting the checkpoint on the test split, when the config does."""
    if data_cfg.test_split is None or data_cfg.val_split != data_cfg.test_split:
        return None
    return (
        f"data.val_split={data_cfg.val_split} is the test split: the checkpoint is selected on the "
        "test set, so test/* is not an unbiased estimate (the common VQA-CP practice; "
        "the hold-out split avoids it)"
    )


def _best_path(trainer: pl.Trainer) -> str:
    """The checkpoint validation selected ('' before there is one)."""
    return next((c.best_model_path for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)), "")


def evaluate_test_split(
    trainer: pl.Trainer, module: VQAModule, datamodule: VQADataModule, data_cfg: DataConfig
) -> dict[str, Any]:
    """The test split (`data.test_split`), once, with the checkpoint validation selected; its
    `test/*` metrics go to the loggers and are returned for metrics.json. Selecting on the test
    split itself (`data.val_split` = `data.test_split`) is warned about and recorded."""
    out: dict[str, Any] = {}
    if data_cfg.test_split is None:
        return out
    warning = selection_warning(data_cfg)
    if warning:
        log.warning(warning)
        out["warnings"] = [warning]
    best = _best_path(trainer)
    results = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    out.update({k: float(v) for k, v in (results[0] if results else {}).items()})
    out["test_checkpoint"] = best or "the final weights"
    log.info(
        "test split %s, with %s: %s",
        data_cfg.test_split,
        Path(best).name if best else "the final weights",
        ", ".join(f"{k.removeprefix('test/')} {v:.2f}" for k, v in out.items() if k.startswith("test/")),
    )
    return out


def explain_failure(
    err: BaseException, cfg: DictConfig, trainer: pl.Trainer, module: VQAModule, datamodule: VQADataModule
) -> None:
    """A failed fit as the user's error where it is one: out of memory (with the sizes involved),
    a model torch.compile could not compile, or a signal (the message says what was saved and how
    to resume; the exit code is the signal's). Returns for any other error, which the caller
    re-raises."""
    if isinstance(err, torch.OutOfMemoryError):
        raise UserError(out_of_memory_advice(datamodule, module, err)) from err
    if isinstance(err, torch._dynamo.exc.TorchDynamoException):
        if not module.hparams.get("compile"):
            return
        reason = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise UserError(
            f"compile=true failed: torch.compile could not compile the model ({reason}). Train "
            "eagerly with compile=false (the same results, slower on a GPU), or install what it "
            "names (a C++ compiler for the CPU, Triton for a GPU)."
        ) from err
    stop = interrupted(trainer.callbacks)
    if stop is None:
        return
    message = stop.message(trainer, command_overrides())
    if stop.stage == "test":
        message = test_interrupted_message(trainer, stop, datamodule.cfg, cfg)
    log.error("%s", message)
    if in_multirun():  # the job as failed, and the summary the end of the sweep would print
        record_failure(RuntimeError(message))
        sweep.log_summary(job_dir().parent, stopped_by=stop.signal.name)
    raise SystemExit(stop.exit_code()) from None


def test_interrupted_message(trainer: pl.Trainer, stop: Any, data_cfg: DataConfig, cfg: DictConfig) -> str:
    """What a signal during the end-of-training test evaluation leaves, and the command that runs
    that evaluation alone (its `test/*` go into this run's metrics.json)."""
    best = _best_path(trainer)
    ckpt = best or next((c.last_model_path for c in trainer.checkpoint_callbacks if c.last_model_path), "")
    record = Path(cfg.paths.output_dir) / "metrics.json"
    command = (
        f"python -m butd.evaluate ckpt_path={ckpt} split={data_cfg.test_split}"
        if ckpt
        else f"python -m butd.evaluate ckpt_path=CHECKPOINT split={data_cfg.test_split}"
    )
    return (
        f"the test evaluation of split {data_cfg.test_split} was stopped by {stop.signal.name}; training "
        f"had finished and {record} holds it, without test/*. Run the test evaluation alone (it adds "
        f"test/* to that metrics.json) with: {command}"
    )


def out_of_memory_advice(datamodule: VQADataModule, module: VQAModule, err: Exception) -> str:
    """What did not fit, with the sizes involved and the settings that shrink them (all read from
    the datamodule's config, the one the run uses)."""
    from butd.data.stores import split_nbytes

    info, data = datamodule.info, datamodule.cfg
    splits = list(dict.fromkeys([*data.training_splits, data.val_split]))
    held = sum(split_nbytes(info.split_path(s)) for s in splits) / 2**30
    batch = data.batch_size * info.num_boxes * info.feature_dim * 4 / 2**20
    return (
        f"out of memory: feature store '{datamodule.store}' ({held:.1f} GiB of float16 features for "
        f"{splits} when held in ram/gpu), batch {data.batch_size} ({batch:.0f} MiB of float32 "
        f"features per batch), model of {module.num_parameters:,} parameters at width "
        f"{module.model_cfg.num_hid}. Lower data.batch_size, or use data.feature_store=h5 (or ram "
        f"instead of gpu). ({err})"
    )


def written_files(trainer: pl.Trainer, record: MetricsJSON | None) -> list[Any]:
    """What a fit left on disk: metrics.json, the checkpoints, the CSV log, the W&B run folder."""
    paths: list[Any] = [record.path if record is not None else None]
    paths += [c.best_model_path for c in trainer.checkpoint_callbacks]
    for lg in trainer.loggers:
        # W&B's run files (`_experiment`: reading `experiment` would start a run after it finished)
        experiment_dir = getattr(getattr(lg, "_experiment", None), "dir", None)
        log_dir = getattr(lg, "log_dir", None)  # the CSV logger's metrics.csv folder
        paths.append(Path(experiment_dir).parent if isinstance(experiment_dir, str) else log_dir)
    return paths


def command_overrides() -> list[str]:
    """This run's command-line overrides (empty under the compose API)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def finish_wandb(trainer: pl.Trainer, exit_code: int = 0) -> None:
    """Close the W&B run (marked failed on an error) so the next job of a multirun starts its own."""
    from pytorch_lightning.loggers import WandbLogger

    if any(isinstance(lg, WandbLogger) for lg in trainer.loggers):
        import wandb

        wandb.finish(exit_code=exit_code)
