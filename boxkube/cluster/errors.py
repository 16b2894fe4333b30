"""Errors of cluster provisioning, each meant to be shown to a person as one line.

`ClusterError.message` is the one-line summary the CLI prints after
``ERROR:``; `details` are optional further lines (for example the last lines
of a log) printed below it.
"""

from __future__ import annotations

from collections.abc import Sequence


class ClusterError(Exception):
    """An expected failure with a message for the person at the keyboard."""

    def __init__(self, message: str, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)

    def __str__(self) -> str:
        return self.message


class NotSupportedError(ClusterError):
    """A provider, flag or value that boxkube does not support (yet)."""


class ClusterExistsError(ClusterError):
    """A cluster of that name already exists."""


class ClusterNotFoundError(ClusterError):
    """No cluster of that name exists."""


class StepFailedError(ClusterError):
    """One named step of cluster creation failed."""

    def __init__(self, step: str, cause: BaseException) -> None:
        reason = str(cause) or type(cause).__name__
        details = cause.details if isinstance(cause, ClusterError) else []
        super().__init__(f"{step}: {reason}", details)
        self.step = step
        self.cause = cause
