"""Raw files that butd writes itself (the synthetic generator, the changing-priors re-split): each
written atomically, and never over a file butd did not write.

A raw folder usually holds downloads that took hours (VQA v2, VQA-CP v2). A command that writes
into one records what it wrote in `.butd_written.json` there (name, size, modification time);
a file it is about to write that exists and is not recorded as written by butd, or was changed
since, is someone else's, and the command refuses before writing anything unless told to
replace it. Each file is written under a `.partial` name, fsynced and renamed into place, so a
reader sees the old file or the new one, never a part.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from butd.errors import UserError
from butd.files import atomic_open, atomic_write_text

#: the record of the files butd wrote in a raw folder
LEDGER = ".butd_written.json"


class ForeignFileError(UserError):
    """A file to be written exists and butd did not write it; nothing was written."""


class RawFiles:
    """Writes files under `folder`, atomically, over none but its own earlier files.

    `replace`: the explicit flag that lets it replace files it did not write (and how the user
    says it, for the message: `--overwrite`). `trust_unrecorded`: files in a folder written
    before the ledger existed (a generated folder with its `synthetic_spec.json`) count as butd's.
    `elsewhere`: what the message advises writing to instead.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        command: str,
        replace: bool = False,
        flag: str = "",
        trust_unrecorded: bool = False,
        elsewhere: str = "another output folder",
    ) -> None:
        self.folder = Path(folder)
        self.elsewhere = elsewhere
        self.command = command
        self.replace = replace
        self.flag = flag
        self.trust_unrecorded = trust_unrecorded
        self._ledger = self._read_ledger()

    def _read_ledger(self) -> dict[str, dict[str, int]]:
        try:
            data = json.loads((self.folder / LEDGER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _stamp(path: Path) -> dict[str, int]:
        st = path.stat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def owned(self, name: str) -> bool:
        """True when `name` is absent, or was written by butd and not changed since."""
        path = self.folder / name
        if not path.exists():
            return True
        if not path.is_file():
            return False
        recorded = self._ledger.get(name)
        if recorded is None:
            return self.trust_unrecorded and not self._ledger
        return recorded == self._stamp(path)

    def check(self, names: Iterable[str]) -> None:
        """Refuse, before anything is written, when a file to be written is not butd's to replace."""
        if not self.folder.exists():
            return
        if not self.folder.is_dir():
            raise ForeignFileError(
                f"{self.folder} is a file, not a folder; give a folder for {self.command}'s files"
            )
        foreign = [n for n in names if not self.owned(n)]
        dirs = [n for n in foreign if (self.folder / n).is_dir()]
        if dirs:
            raise ForeignFileError(
                f"{self.folder / dirs[0]} is a folder where {self.command} writes a file; move it"
            )
        if foreign and not self.replace:
            shown = ", ".join(foreign[:4]) + (f", ... {len(foreign)} in all" if len(foreign) > 4 else "")
            how = f"; to replace them, add {self.flag}" if self.flag else ""
            raise ForeignFileError(
                f"{self.folder} holds {shown}, which {self.command} would replace and did not write "
                f"(downloaded or edited files?); nothing was written. Choose {self.elsewhere}{how}"
            )

    @contextmanager
    def open(self, name: str, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
        """A file to write `name` through; it replaces `name` only when the block ends without error."""
        path = self.folder / name
        with atomic_open(path, mode, **kwargs) as fh:
            yield fh
        self._ledger[name] = self._stamp(path)
        self._save_ledger()

    def write_text(self, name: str, text: str) -> Path:
        with self.open(name, "w", encoding="utf-8") as fh:
            fh.write(text)
        return self.folder / name

    def _save_ledger(self) -> None:
        atomic_write_text(self.folder / LEDGER, json.dumps(self._ledger, indent=1, sort_keys=True))
