"""What a command prints: whole lines in a log or a pipe, no library noise, the files it wrote.

Every entry point runs these through `butd.config.entry.entry_point`:
- `whole_lines()`: Rich (progress bars, tables) wraps at 80 columns when stdout is not a
  terminal, which breaks paths mid-name in a SLURM log or behind `| tee`; a wide COLUMNS stops it.
- `quiet_libraries()`: the lines every run printed and nobody reads (Lightning's accelerator
  lines, logger tip and checkpoint-loading lines, torch's `LeafSpec` deprecation, W&B's start
  banner and its ~30 lines of sparklines), silenced at their source by logger filters, warning
  filters scoped to the known messages and W&B's own `quiet` and `show_info` settings; other
  library warnings print as one `warning: ...` line. `verbose=true` on the command line keeps them.
- `ConsoleFormatter`: a console line is the message alone (the run's log file adds the time).
- `terminal()`: progress bars on a terminal only; a file or a pipe gets whole lines.
- `report_written(paths)`: one line per file written, with its full path, at the end.

Nothing here imports torch or Lightning: the filters attach to logger names before those load.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

#: the width Rich assumes when stdout is a file or a pipe: wide enough for any path
PIPE_COLUMNS = 1000

#: logger name -> starts of the messages dropped from it (Lightning logs these on every run)
NOISE: dict[str, tuple[str, ...]] = {
    "pytorch_lightning.utilities.rank_zero": (
        "GPU available:",
        "TPU available:",
        "HPU available:",
        "💡 Tip:",
        # butd says which checkpoint it resumes from or tests, once
        "Restoring states from the checkpoint path at",
        "Loaded model weights from the checkpoint at",
    ),
}

#: (warning category, regex of the message) of the library warnings every run printed
NOISE_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
    # debias.mode=iter (manual optimisation): a step checkpoint holds the state after the batch's
    # steps, as under automatic optimisation, which is what a resumed run must start from
    (UserWarning, r"Using ModelCheckpoint with manual optimization and every_n_train_steps"),
)


class ConsoleFormatter(logging.Formatter):
    """A console line is the message alone; a warning or an error says which it is first
    (`warning: ...`). The run's log file keeps the time and level (conf/hydra/default.yaml)."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


def terminal() -> bool:
    """Whether stdout is a terminal: progress bars there, whole lines only in a file or a pipe."""
    return sys.stdout.isatty()


class _DropPrefixes(logging.Filter):
    """Drops the records of one logger whose message starts with one of `prefixes`."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.prefixes)


def _warning_line(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    log.warning("%s", str(message).strip().replace("\n", " "))


def whole_lines() -> None:
    """No forced 80-column wrapping when stdout is not a terminal (an explicit COLUMNS wins)."""
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        os.environ["COLUMNS"] = str(PIPE_COLUMNS)


def quiet_libraries(*, verbose: bool = False) -> None:
    """Silence the known library noise, unless `verbose` (idempotent)."""
    if verbose:
        return
    for name, prefixes in NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropPrefixes) for f in logger.filters):
            logger.addFilter(_DropPrefixes(prefixes))
    for category, message in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    # W&B's own settings: no banner (an offline run prints its 3 lines unless W&B's info
    # messages are off), no history sparklines, no summary at the end of a run; its warnings
    # and errors still print. An explicit WANDB_QUIET or WANDB_SHOW_INFO wins.
    os.environ.setdefault("WANDB_QUIET", "true")
    os.environ.setdefault("WANDB_SHOW_INFO", "false")
    # a library's warning is one line, `warning: ...`, not a source path and a code line
    warnings.showwarning = _warning_line


def report_written(paths: Iterable[Path | str | None]) -> list[Path]:
    """Log `wrote PATH` for each file or folder written (absolute, in the order given, once each)."""
    written: list[Path] = []
    for path in paths:
        if path is None or str(path) == "":
            continue
        full = Path(path).resolve()
        if full not in written and full.exists():
            written.append(full)
            log.info("wrote %s", full)
    return written
