"""`python -m butd.train`: train and validate a model, keep the best checkpoint, write metrics.json.

python -m butd.train                                  # the reference recipe on VQA v2
python -m butd.train experiment=quickstart            # synthetic set, CPU, a few minutes
python -m butd.train -m model.activation=relu,glu,gated_tanh
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from butd import sweep
from butd.callbacks import MetricsJSON
from butd.checkpointing import trainer_setup
from butd.config import model_config, model_dict, resolve_ckpt_path
from butd.data.datamodule import VQADataModule
from butd.data.stores import split_nbytes
from butd.errors import UserError
from butd.module import VQAModule
from butd.schemas import validate_train_config

log = logging.getLogger(__name__)


def _instantiate_group(node: DictConfig | None) -> list[Any]:
    """Each entry of a group such as `callbacks` or `logger` that names a `_target_`."""
    if not node:
        return []
    return [instantiate(v) for v in node.values() if isinstance(v, DictConfig) and "_target_" in v]


def build(cfg: DictConfig) -> tuple[VQAModule, VQADataModule]:
    """The datamodule (preparing data where the config allows) and a fresh module for it."""
    model_cfg = model_config(cfg.model)
    datamodule: VQADataModule = instantiate(cfg.data, _convert_="all", shuffle_seed=cfg.seed)
    datamodule.prepare_data()
    info = datamodule.info
    module = VQAModule(
        model=model_dict(model_cfg),
        ntoken=info.ntoken,
        v_dim=info.feature_dim,
        num_answers=info.num_answers,
        optimizer=OmegaConf.to_container(cfg.optim.optimizer, resolve=True),
        compile=bool(cfg.get("compile", False)),
    )
    module.model.w_emb.init_from(info.glove())
    module.metadata = {
        "vocab": info.vocabulary().to_json(),
        "answers": info.answers(),
        "data": info.manifest,
        # the data section as written (interpolations kept), so evaluate/predict find the cache
        "data_config": OmegaConf.to_container(cfg.data, resolve=False),
    }
    return module, datamodule


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job; returns the summary written to metrics.json."""
    validate_train_config(cfg)  # before any data is read
    pl.seed_everything(cfg.seed, workers=True)
    trainer_kwargs, requeued = trainer_setup(cfg)
    ckpt_path = requeued or resolve_ckpt_path(
        cfg.ckpt_path, log_dir=cfg.paths.log_dir, task_name=cfg.task_name
    )
    module, datamodule = build(cfg)
    log.info("model: %s, %s parameters", module.model_cfg, f"{module.num_parameters:,}")

    callbacks = _instantiate_group(cfg.get("callbacks"))
    loggers = _instantiate_group(cfg.get("logger"))
    trainer: pl.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, **trainer_kwargs
    )
    hparams = OmegaConf.to_container(cfg, resolve=True)
    hparams["num_parameters"] = module.num_parameters
    for lg in trainer.loggers:
        lg.log_hyperparams(hparams)

    failed = True
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        failed = False
    except torch.OutOfMemoryError as err:
        raise UserError(out_of_memory_advice(cfg, datamodule, module, err)) from err
    finally:
        _finish_wandb(trainer, exit_code=int(failed))
    record = next((c for c in callbacks if isinstance(c, MetricsJSON)), None)
    return record.summary(module) if record is not None else {}


def out_of_memory_advice(
    cfg: DictConfig, datamodule: VQADataModule, module: VQAModule, err: Exception
) -> str:
    """What did not fit, with the sizes involved and the settings that shrink them."""
    info = datamodule.info
    splits = list(dict.fromkeys([*cfg.data.train_splits, cfg.data.val_split]))
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


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Returns the best val/score, the value a Hydra sweeper optimises.

    In a multirun a failing job is recorded in its folder and returns None, so the sweep goes on.
    """
    try:
        sweep.check_multirun_devices(cfg)
        summary = train(cfg)
    except Exception as err:
        if sweep.in_multirun():
            sweep.record_failure(err)
            return None
        cause = sweep.user_error(err)
        if cause is not None:
            raise SystemExit(f"error: {cause}") from None
        raise
    score = summary.get("val/score")
    if score is not None:
        log.info("best val/score %.2f at epoch %s", score, summary.get("best_epoch"))
    return score


if __name__ == "__main__":
    main()
