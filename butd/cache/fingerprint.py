"""Content fingerprints of raw files, so a cache notices a raw file edited in place.

A size alone misses an edit of the same length (a fixed typo in a question, one feature row
rewritten). A fingerprint records the size, the modification time and a SHA-256: of the whole
file for JSON files and anything up to `FULL_HASH_BYTES` (they are small next to the features,
and prepare reads them whole anyway), of `SAMPLES` blocks spread evenly over the file (first and
last included) for the large feature TSVs and GloVe, which would take minutes to hash.

Checking is fast: a file with the recorded size and modification time is taken as unchanged
without reading it. Only when the time differs is the hash computed again: a different hash is an
edit; the same hash of a whole file is the same file (a copy); the same sampled hash of a large
file cannot rule out an edit between the samples, so the check says so once and goes on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

#: files up to this size (and every JSON file) are hashed whole
FULL_HASH_BYTES = 64 * 2**20
#: blocks hashed in a larger file, and their size
SAMPLES = 64
BLOCK_BYTES = 64 * 2**10


def _hash_whole(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _hash_sampled(path: Path, size: int) -> str:
    digest = hashlib.sha256(str(size).encode())
    last = max(0, size - BLOCK_BYTES)
    with open(path, "rb") as fh:
        for i in range(SAMPLES):
            fh.seek(last * i // (SAMPLES - 1))
            digest.update(fh.read(BLOCK_BYTES))
    return digest.hexdigest()


def fingerprint(path: Path) -> dict[str, Any]:
    """{size, mtime_ns, sha256, hashed: "whole" | "sampled"} of one raw file."""
    stat = path.stat()
    whole = path.suffix.lower() == ".json" or stat.st_size <= FULL_HASH_BYTES
    return {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": _hash_whole(path) if whole else _hash_sampled(path, stat.st_size),
        "hashed": "whole" if whole else "sampled",
    }


def changed(path: Path, recorded: dict[str, Any]) -> tuple[str | None, str | None]:
    """(why `path` differs from its recorded fingerprint, or None; a caveat to log, or None).

    A recorded int is a manifest written before fingerprints: its size is all there is to check.
    """
    stat = path.stat()
    size = recorded if isinstance(recorded, int) else recorded.get("size")
    if stat.st_size != size:
        return f"{size:,} bytes then, {stat.st_size:,} now", None
    if isinstance(recorded, int) or stat.st_mtime_ns == recorded.get("mtime_ns"):
        return None, None
    now = fingerprint(path)
    if now["sha256"] != recorded.get("sha256"):
        return f"same size, other content ({recorded['hashed']} SHA-256 differs)", None
    if now["hashed"] == "sampled":
        return None, (
            f"{path} has another modification time than when the cache was built, and its "
            f"{SAMPLES} sampled blocks are unchanged: taken as the same file (a copy?). If it was "
            "edited, rebuild the cache with force=true"
        )
    return None, None
