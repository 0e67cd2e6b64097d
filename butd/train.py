"""`python -m butd.train`: train and validate a model, keep the best checkpoint, write metrics.json.

python -m butd.train                                  # the reference recipe on VQA v2
python -m butd.train experiment=quickstart            # synthetic set, CPU, a few minutes
python -m butd.train -m model.activation=relu,glu,gated_tanh
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from butd.config.data import DataConfig
from butd.config.debias import DebiasConfig
from butd.config.entry import entry_point, in_multirun, job_dir, record_failure
from butd.config.model import ModelConfig
from butd.config.output import report_written
from butd.config.run_folder import check_resumed_folder
from butd.errors import UserError
from butd.training import sweep
from butd.training.validate import validate_train_config

# torch and Lightning load inside the functions below, after the config is checked, so that
# `--help`, `--cfg job` and a config error answer before `import torch` (seconds) happens.
if TYPE_CHECKING:
    import pytorch_lightning as pl

    from butd.data.datamodule import VQADataModule
    from butd.training.module import VQAModule

log = logging.getLogger(__name__)


def _instantiate_group(node: DictConfig | None) -> list[Any]:
    """Each entry of a group such as `callbacks` or `logger` that names a `_target_`."""
    if not node:
        return []
    return [instantiate(v) for v in node.values() if isinstance(v, DictConfig) and "_target_" in v]


def build(
    cfg: DictConfig,
    *,
    data_cfg: DataConfig | None = None,
    model_cfg: ModelConfig | None = None,
    debias_cfg: DebiasConfig | None = None,
) -> tuple[VQAModule, VQADataModule]:
    """The datamodule (its cache prepared first where the config allows) and a fresh module for it.

    `data_cfg`, `model_cfg`, `debias_cfg`: the sections already validated
    (`validate_train_config`); read from `cfg` when not given.
    """
    from butd.data.datamodule import VQADataModule
    from butd.preparation.build import prepared_cache
    from butd.training.initialise import initialise_weights
    from butd.training.module import VQAModule

    data_cfg = data_cfg or DataConfig.from_dict(cfg.data)
    model_cfg = model_cfg or ModelConfig.from_dict(cfg.model)
    prepared_cache(data_cfg)  # before any reader; under DDP in the launching process, once
    datamodule = VQADataModule(data_cfg, shuffle_seed=cfg.seed)
    datamodule.prepare_data()
    info = datamodule.info
    module = VQAModule(
        model=model_cfg,
        debias=debias_cfg or DebiasConfig.from_dict(cfg.get("debias")),
        ntoken=info.ntoken,
        v_dim=info.feature_dim,
        num_answers=info.num_answers,
        optimizer=OmegaConf.to_container(cfg.optim.optimizer, resolve=True),
        compile=bool(cfg.get("compile", False)),
    )
    initialise_weights(module.model, model_cfg, data=data_cfg, info=info)
    module.metadata = {
        "vocab": info.vocabulary().to_json(),
        "answers": info.answers(),
        "data": info.manifest.to_json(),
        # the data section as written (interpolations kept), so evaluate/predict find the cache
        "data_config": OmegaConf.to_container(cfg.data, resolve=False),
        # the seed draws the weights, the batches and the dropout masks: a resume must keep it
        "seed": int(cfg.seed),
        "clip_grad_norm": OmegaConf.select(cfg, "optim.clip_grad_norm", default=None),
    }
    # every method gets the prior when the data has question types: the diagnostics read it
    types = datamodule.question_types
    if module.debias.needs_prior:
        if types is None:
            raise UserError(
                f"debias={module.debias_cfg.name} needs each training question's question_type, and "
                f"data={data_cfg.name}'s splits {data_cfg.training_splits} have none (no annotations, "
                "or annotations without question_type). Use debias=none or debias=rubi, or a data set "
                "with question types (vqa2, vqacp2, synthetic, synthetic_cp)."
            )
    if types is not None:
        import torch

        module.set_prior(torch.from_numpy(types.prior))
    return module, datamodule


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job; returns the summary written to metrics.json."""
    sweep.check_multirun_devices(cfg)
    # before any data is read, each section once
    data_cfg, model_cfg, debias_cfg = validate_train_config(cfg)
    import pytorch_lightning as pl
    import torch

    from butd.cache.locks import read_locks
    from butd.training.callbacks import MetricsJSON
    from butd.training.checkpoints import (
        ResumeOverrides,
        check_resume_overrides,
        choose_resume,
        resolve_ckpt_path,
        trainer_setup,
    )
    from butd.training.machine import describe, machine_line
    from butd.training.signals import InterruptCheckpoint, interrupted

    machine = describe(accelerator=str(cfg.trainer.get("accelerator")), devices=cfg.trainer.get("devices"))
    log.info("%s", machine_line(machine))
    warning = selection_warning(data_cfg)
    if warning:
        log.warning(warning)
    pl.seed_everything(cfg.seed, workers=True, verbose=bool(cfg.get("verbose", False)))
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")  # TF32 matmuls where a run is fp32 on a GPU
    allowed = check_resume_overrides(cfg.get("resume_overrides"))
    trainer_kwargs, requeued = trainer_setup(cfg)
    ckpt_path = requeued
    changes: list[dict[str, Any]] = []
    if not requeued:  # a missing file, or no last.ckpt for the task, is said before data is read
        resolve_ckpt_path(cfg.ckpt_path, log_dir=cfg.paths.log_dir, task_name=cfg.task_name)
    module, datamodule = build(cfg, data_cfg=data_cfg, model_cfg=model_cfg, debias_cfg=debias_cfg)
    log.info("model: %s; %s parameters", module.model_cfg.summary(), f"{module.num_parameters:,}")
    if not requeued:  # checked against the command and the cache before Lightning loads it
        ckpt_path = choose_resume(
            cfg.ckpt_path,
            log_dir=cfg.paths.log_dir,
            task_name=cfg.task_name,
            max_epochs=cfg.trainer.get("max_epochs"),
            allowed=allowed,
            changes=changes,
            hparams=dict(module.hparams),
            metadata=module.metadata,
            data_config=module.metadata["data_config"],
        )
        if str(cfg.ckpt_path) == "last":  # `last` may have chosen another run than the folder's
            check_resumed_folder(cfg.paths.output_dir, chosen=ckpt_path, overwrite=bool(cfg.get("overwrite")))

    callbacks = _instantiate_group(cfg.get("callbacks"))
    callbacks.append(InterruptCheckpoint(dirpath=Path(cfg.paths.output_dir) / "checkpoints"))
    record = next((c for c in callbacks if isinstance(c, MetricsJSON)), None)
    if changes:  # `resume_overrides`: applied over the restored optimizer state, and recorded
        callbacks.append(ResumeOverrides(changes=changes))
        if record is not None:
            record.resume_overrides = changes
    loggers = _instantiate_group(cfg.get("logger"))
    trainer_kwargs |= module.take_gradient_clip(cfg.trainer)  # debias.mode=iter clips its own steps
    trainer: pl.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, **trainer_kwargs
    )
    hparams = OmegaConf.to_container(cfg, resolve=True)
    hparams["num_parameters"] = module.num_parameters
    hparams["machine"] = machine
    for lg in trainer.loggers:
        lg.log_hyperparams(hparams)

    if record is not None:
        record.machine = machine
    failed = True
    summary: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    try:
        # no prepare rewrites the cache, or the cache a linked one reads, while they are read; and
        # a signal during the test evaluation is handled as one during fit
        with read_locks(datamodule.info, data_cfg):
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
            summary = record.summary(module) if record is not None else {}
            # while the W&B run is still open: its test/* go to W&B as well as to metrics.json
            extra = evaluate_test_split(trainer, module, datamodule, data_cfg)
        failed = False
    except torch.OutOfMemoryError as err:
        raise UserError(out_of_memory_advice(cfg, datamodule, module, err)) from err
    except torch._dynamo.exc.TorchDynamoException as err:
        if not cfg.get("compile", False):
            raise
        reason = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise UserError(
            f"compile=true failed: torch.compile could not compile the model ({reason}). Train "
            "eagerly with compile=false (the same results, slower on a GPU), or install what it "
            "names (a C++ compiler for the CPU, Triton for a GPU)."
        ) from err
    except BaseException:
        stop = interrupted(callbacks)
        if stop is None:
            raise
        message = stop.message(trainer, _overrides())
        if stop.stage == "test":
            message = test_interrupted_message(trainer, stop, data_cfg, cfg)
        log.error("%s", message)
        if in_multirun():  # the job as failed, and the summary the end of the sweep would print
            record_failure(RuntimeError(message))
            sweep.log_summary(job_dir().parent, stopped_by=stop.signal.name)
        raise SystemExit(stop.exit_code()) from None
    finally:
        _finish_wandb(trainer, exit_code=int(failed))
    if extra and record is not None and not trainer.fast_dev_run:
        record.add(extra)
    report_written(written_files(trainer, record))
    return summary | extra


def selection_warning(data_cfg: DataConfig) -> str | None:
    """What is wrong with selecting the checkpoint on the test split, when the config does."""
    if data_cfg.test_split is None or data_cfg.val_split != data_cfg.test_split:
        return None
    return (
        f"data.val_split={data_cfg.val_split} is the test split: the checkpoint is selected on the "
        "test set, so test/* is not an unbiased estimate (the common VQA-CP practice; "
        "the hold-out split avoids it)"
    )


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
    best = next((c.best_model_path for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)), "")
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


def test_interrupted_message(trainer: pl.Trainer, stop: Any, data_cfg: DataConfig, cfg: DictConfig) -> str:
    """What a signal during the end-of-training test evaluation leaves, and the command that runs
    that evaluation alone (its `test/*` go into this run's metrics.json)."""
    best = next((c.best_model_path for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)), "")
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


def written_files(trainer: pl.Trainer, record: Any) -> list[Any]:
    """What a fit left on disk: metrics.json, the checkpoints, the CSV log, the W&B run folder."""
    paths = [record.path if record is not None else None]
    paths += [c.best_model_path for c in trainer.checkpoint_callbacks]
    for lg in trainer.loggers:
        # W&B's run files (`_experiment`: reading `experiment` would start a run after it finished)
        experiment_dir = getattr(getattr(lg, "_experiment", None), "dir", None)
        log_dir = getattr(lg, "log_dir", None)  # the CSV logger's metrics.csv folder
        paths.append(Path(experiment_dir).parent if isinstance(experiment_dir, str) else log_dir)
    return paths


def _overrides() -> list[str]:
    """This run's command-line overrides (empty under the compose API)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def out_of_memory_advice(
    cfg: DictConfig, datamodule: VQADataModule, module: VQAModule, err: Exception
) -> str:
    """What did not fit, with the sizes involved and the settings that shrink them."""
    from butd.data.stores import split_nbytes

    info = datamodule.info
    splits = list(dict.fromkeys([*datamodule.cfg.training_splits, cfg.data.val_split]))
    held = sum(split_nbytes(info.split_path(s)) for s in splits) / 2**30
    batch = cfg.data.batch_size * info.num_boxes * info.feature_dim * 4 / 2**20
    return (
        f"out of memory: feature store '{datamodule.store}' ({held:.1f} GiB of float16 features for "
        f"{splits} when held in ram/gpu), batch {cfg.data.batch_size} ({batch:.0f} MiB of float32 "
        f"features per batch), model of {module.num_parameters:,} parameters at width "
        f"{module.model_cfg.num_hid}. Lower data.batch_size, or use data.feature_store=h5 (or ram "
        f"instead of gpu). ({err})"
    )


def _finish_wandb(trainer: pl.Trainer, exit_code: int = 0) -> None:
    """Close the W&B run (marked failed on an error) so the next job of a multirun starts its own."""
    from pytorch_lightning.loggers import WandbLogger

    if any(isinstance(lg, WandbLogger) for lg in trainer.loggers):
        import wandb

        wandb.finish(exit_code=exit_code)


@entry_point("train")
def main(cfg: DictConfig) -> float | None:
    """Returns the best val/score, the value a Hydra sweeper optimises (None for a failed job)."""
    summary = train(cfg)
    score = summary.get("val/score")
    if score is not None:
        log.info("best val/score %.2f at epoch %s", score, summary.get("best_epoch"))
    return score


if __name__ == "__main__":
    main()
