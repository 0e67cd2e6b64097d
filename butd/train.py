"""`python -m butd.train`: train and validate a model, keep the best checkpoint, write metrics.json.

python -m butd.train                                  # the reference recipe on VQA v2
python -m butd.train experiment=quickstart            # synthetic set, CPU, a few minutes
python -m butd.train -m model.activation=relu,glu,gated_tanh
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from butd.config.entry import entry_point
from butd.config.output import report_written
from butd.training import sweep
from butd.training.validate import validate_train_config

if TYPE_CHECKING:  # torch and Lightning load only inside train(), after the config is checked
    from butd.data.datamodule import VQADataModule
    from butd.training.module import VQAModule
    from butd.training.validate import RunConfig

log = logging.getLogger(__name__)


def build(run: RunConfig) -> tuple[VQAModule, VQADataModule]:
    """What an entry point builds: the cache prepared first where `data.auto_prepare` allows (a
    missing cache is otherwise the error naming `python -m butd.prepare`), then the DataModule and
    a fresh module (`butd.training.run.build`, which only reads). Under DDP this runs in the
    launching process, before the other ranks start."""
    from butd.preparation.build import prepared_cache
    from butd.training import run as steps

    prepared_cache(run.data)
    return steps.build(run)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job; returns the summary written to metrics.json."""
    sweep.check_multirun_devices(cfg)
    run = validate_train_config(cfg)  # each section typed and checked once, before any data is read
    # torch and Lightning load only now, so that `--help`, `--cfg job` and a config error answer
    # before `import torch` (seconds) happens
    from butd.cache.locks import read_locks
    from butd.training import run as steps

    machine = steps.start(cfg, run)
    plan = steps.ResumePlan.settle(cfg, run)
    module, datamodule = build(run)
    ckpt_path, changes = plan.checkpoint(cfg, module)
    trainer, record = steps.make_trainer(cfg, module, plan=plan, changes=changes, machine=machine)
    failed = True
    summary: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    try:
        # no prepare rewrites the cache, or the cache a linked one reads, while they are read; and
        # a signal during the test evaluation is handled as one during fit
        with read_locks(datamodule.info, run.data):
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
            summary = record.summary(module) if record is not None else {}
            # while the W&B run is still open: its test/* go to W&B as well as to metrics.json
            extra = steps.evaluate_test_split(trainer, module, datamodule, run.data)
        failed = False
    except BaseException as err:
        steps.explain_failure(err, cfg, trainer, module, datamodule)  # a user's error, or a signal
        raise
    finally:
        steps.finish_wandb(trainer, exit_code=int(failed))
    if extra and record is not None and not trainer.fast_dev_run:
        record.add(extra)
    report_written(steps.written_files(trainer, record))
    return summary | extra


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
