"""SIGTERM and SIGINT end a run with a resumable checkpoint, the resume command and a non-zero status.

Lightning turns SIGTERM (what `kill`, schedulers and container runtimes send) into a
`SIGTERMException`, a `SystemExit` without a code, so a terminated run would exit 0 with no
record; Ctrl-C becomes `sys.exit(1)`. Here `InterruptCheckpoint` saves where the run stands when
either arrives, and `butd.train` exits 143 (SIGTERM) or 130 (SIGINT), the shell's convention.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)

#: the checkpoint an interrupted run leaves in its checkpoints folder
INTERRUPTED = "interrupted.ckpt"


class InterruptCheckpoint(pl.Callback):
    """Saves `interrupted.ckpt` when SIGTERM or SIGINT stops training; remembers which signal."""

    def __init__(self, *, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)
        self.signal: signal.Signals | None = None
        self.path: Path | None = None
        #: where the signal came: "training", "validation" (of an epoch in fit) or "test"
        self.stage = "training"

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, SIGTERMException):
            self.signal = signal.SIGTERM
        elif isinstance(exception, KeyboardInterrupt):
            self.signal = signal.SIGINT
        else:
            return
        self.stage = (
            "test" if trainer.state.fn == "test" else "validation" if trainer.validating else "training"
        )
        if trainer.state.fn != "fit" or trainer.global_step == 0:
            return  # nothing trained yet: the earlier checkpoint (if any) is where to resume
        path = self.dirpath / INTERRUPTED
        try:
            trainer.save_checkpoint(path)
        except Exception as err:  # a full disk, say: the earlier checkpoints remain
            log.error("could not save %s on %s: %s", path, self.signal.name, err)
            return
        self.path = path

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """A save in the middle of an epoch's validation (this callback's on a signal, Lightning's
        SLURM requeue checkpoint) records that validation as not run yet, so a resume runs the whole
        validation (Lightning would resume past it: no val/score, no best checkpoint).

        Lightning reruns a validation it finds "restarted mid-evaluation": the batch in progress
        started and not processed. The validation batches done so far are marked so (their
        metrics were not saved, so the resumed run validates from the first batch). A save at the
        end of a validation (its last batch done) is left as it is."""
        if trainer.state.fn != "fit" or not trainer.validating or trainer.sanity_checking:
            return
        progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.val_loop.batch_progress")
        if not progress or progress.get("is_last_batch") or progress["total"]["started"] < 1:
            return
        total = progress["total"]
        total["processed"] = total["completed"] = total["started"] - 1
        # this epoch's count: none done, so the resumed validation reads every batch from the first
        progress["current"] = {k: 0 for k in progress["current"]}

    def exit_code(self) -> int:
        """128 + the signal's number: 143 for SIGTERM, 130 for SIGINT."""
        assert self.signal is not None
        return 128 + int(self.signal)

    def message(self, trainer: pl.Trainer, overrides: list[str]) -> str:
        """What happened and the command that resumes the run."""
        where = f"epoch {trainer.current_epoch}, step {trainer.global_step}"
        if self.path is None:
            return f"training stopped by {self.signal.name} at {where} before anything was saved"
        kept = [o for o in overrides if not o.startswith("ckpt_path=")]
        command = " ".join(["python -m butd.train", *kept, f"ckpt_path={self.path}"])
        return f"training stopped by {self.signal.name} at {where}; saved {self.path}. Resume with: {command}"


def interrupted(callbacks: list[Any]) -> InterruptCheckpoint | None:
    """The InterruptCheckpoint among `callbacks` that saw a signal, if any."""
    return next((c for c in callbacks if isinstance(c, InterruptCheckpoint) and c.signal is not None), None)
