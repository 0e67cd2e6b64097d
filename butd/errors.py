"""Errors that describe a user's mistake; entry points print their message, not a traceback."""


class UserError(Exception):
    """Bad input (config, files, arguments). The message names what is wrong and how to fix it."""


class ConfigError(UserError, ValueError):
    """A config value or key is invalid."""


class CheckpointError(UserError):
    """A checkpoint that cannot be read, or does not fit the config or the data; the message names
    the file and what differs."""
