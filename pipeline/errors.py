"""Errors a user can fix: each message is one line naming the key, file or store, and the fix."""


class PipelineError(Exception):
    """Bad input: the CLI prints the message alone and exits with code 2."""


class ConfigError(PipelineError, ValueError):
    """A bad option (unknown key, wrong type, out of range, unknown choice)."""


class DataError(PipelineError):
    """A data set or file that cannot be used."""


class StoreError(PipelineError):
    """A tracking or study store that cannot be reached or written."""
