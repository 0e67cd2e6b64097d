"""Errors that describe a user's mistake; entry points print their message, not a traceback."""


class UserError(Exception):
    """Bad input (config, files, arguments). The message names what is wrong and how to fix it."""


class ConfigError(UserError, ValueError):
    """A config value or key is invalid."""


class CheckpointError(UserError):
    """A checkpoint that cannot be read, or does not fit the config or the data; the message names
    the file and what differs."""


#: the operating system's words for a write that found no room (ENOSPC, EDQUOT, EFBIG); HDF5 and
#: torch's zip writer report them inside messages of their own
_FULL_ERRNOS = {28: "No space left on device", 122: "Disk quota exceeded", 27: "File too large"}


class DiskFullError(UserError):
    """Too little room left to write safely, found before writing (`words` says how little)."""

    def __init__(self, message: str, *, words: str) -> None:
        super().__init__(message)
        self.words = words


def disk_full(err: BaseException | None) -> str | None:
    """The OS's words when `err`, or an error it was raised from or while handling, is a full
    disk, a quota or a file size limit (or a `DiskFullError`); None otherwise."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, DiskFullError):
            return err.words
        if isinstance(err, OSError) and err.errno in _FULL_ERRNOS:
            return _FULL_ERRNOS[err.errno]
        for words in _FULL_ERRNOS.values():
            if words in str(err):
                return words
        err = err.__cause__ or err.__context__
    return None
