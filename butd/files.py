"""Writing files so that a reader never sees half of one: the cache, checkpoints, run records and
reports all go through here.

A file is written under its own name plus `PARTIAL` in the same folder (so the rename stays on
one file system: a move across file systems is a copy, and a kill mid-copy leaves half a file),
flushed and fsynced, then renamed over the final name with `os.replace`; the folder is fsynced
so the rename survives a crash. On an error the partial file is removed and the final name keeps
what it held. A run killed mid-write may leave a `*.partial` file behind: it is safe to delete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

#: suffix of a file being written (the cache's, a checkpoint, a record); a killed run may leave one
PARTIAL = ".partial"


def partial_path(path: str | Path) -> Path:
    """Where `path` is written before it is renamed into place: `NAME.partial` beside it."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL)


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """A file to write `path` through (`open`'s `mode` and keyword arguments); it replaces `path`
    only when the block ends without error, and `path` holds the old file or the new, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`path` replaced by `text` (UTF-8) through `atomic_open`; returns `path`."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return Path(path)


def atomic_write_json(path: str | Path, content: Any, *, indent: int | None = 2) -> Path:
    """`path` replaced by `content` as JSON through `atomic_open`; returns `path`."""
    return atomic_write_text(path, json.dumps(content, indent=indent))


def fsync_dir(folder: str | Path) -> None:
    """Make a rename in `folder` durable; some file systems refuse to fsync a folder, which is fine."""
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


def disk_full_message(words: str, *, writing: str, folder: Path, kept: str, larger: str, then: str) -> str:
    """The one-line message for a write that found no room: what was being written (`writing`),
    the space free in `folder` (unless `words` already says how little), what was kept, the
    setting (`larger`) that points the files at a larger disk, and what to do `then`."""
    free = "" if "free" in words else f" ({shutil.disk_usage(folder).free:,} bytes free there)"
    return (
        f"disk full: {words} while {writing}{free}. {kept}. Free space (or point {larger} at a "
        f"larger disk), {then}"
    )
