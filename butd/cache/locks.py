"""Locks on a cache folder, so one `prepare` writes while nobody else writes or reads.

`flock` on a `.lock` file in the folder: it works where HDF5's own file locking is off (usual on
NFS and Lustre), and the kernel releases it when the holder dies, so a killed prepare leaves no
stale lock. `prepare` holds it exclusively (and writes its pid into the file for the message a
waiting process prints); a training holds it shared while it reads the cache, and on the source
cache a linked cache reads its features from (`read_locks`).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"


@contextmanager
def cache_lock(folder: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold the folder's lock (exclusive to write, shared to read), waiting for it with a message.

    A folder that cannot hold a lock file (read-only media) is read without one: nobody can
    prepare into it either.
    """
    folder = Path(folder)
    path = folder / LOCK_FILE
    try:
        if exclusive:
            folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        if exclusive:
            raise
        log.debug("reading %s without a lock: %s", folder, err)
        yield
        return
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            who = f"a prepare (pid {holder})" if holder else "a training reading it"
            log.warning("the cache at %s is in use by %s; waiting for it to be free", folder, who)
            fcntl.flock(fd, mode)
        if exclusive:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            if exclusive:
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def read_locks(info: Any, cfg: Any) -> Iterator[None]:
    """Shared locks on a cache (`info`, a `CacheInfo`) and, for a linked cache (`data.features_from`),
    on the cache whose feature files it reads in place, so that no `prepare` rebuilds either while
    a training reads them. The link is checked again once both are held: a rebuild between the
    check at load and the lock is refused rather than read."""
    from butd.cache.load import check_linked

    with ExitStack() as stack:
        stack.enter_context(cache_lock(info.root, exclusive=False))
        record = info.manifest.features_from
        if record is not None:
            source = Path(cfg.features_from or record["cache"])
            stack.enter_context(cache_lock(source, exclusive=False))
            check_linked(cfg, record)
        yield
