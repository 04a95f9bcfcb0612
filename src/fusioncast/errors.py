"""Exceptions a user can cause, each with a message that names the rule, the column and a count."""

from __future__ import annotations

import os


class FusioncastError(Exception):
    """Base class of every error fusioncast raises on purpose (bad data, bad config, bad state)."""


class ConfigError(FusioncastError):
    """A configuration or parameter value that cannot work."""


class DataValidationError(FusioncastError):
    """Input data broke a rule of the data contract.

    Attributes:
        rule: short machine-readable name of the rule, e.g. ``"unique_series_timestamp"``.
        column: the column the rule is about (or a comma-joined list of columns).
        count: how many rows (or values) broke it.
        example: one offending value, rendered for people.
    """

    def __init__(
        self, rule: str, column: str, count: int, detail: str = "", example: object | None = None
    ) -> None:
        self.rule = rule
        self.column = column
        self.count = int(count)
        self.detail = detail
        self.example = example
        message = f"rule '{rule}' failed on column '{column}': {self.count} offending row(s)"
        if detail:
            message += f"; {detail}"
        if example is not None:
            message += f" (example: {example!r})"
        super().__init__(message)

    def __reduce__(self) -> tuple:
        # Whole across processes: a fold or a shard on a worker raises it to the run's process.
        return (type(self), (self.rule, self.column, self.count, self.detail, self.example))


class DatasetLayoutError(FusioncastError):
    """A dataset folder is not laid out as its converter expects (a file or a column missing)."""


class DistributionError(FusioncastError):
    """A process of a ``multi_worker`` training job failed, or the exchange with it did."""


class ModelStateError(FusioncastError):
    """Saved model state is missing, incomplete or does not match what it claims to be."""


class WorkspaceError(FusioncastError):
    """A path of the input or the workspace cannot be read or written (missing, read-only, full).

    The message names the path and the cause, e.g. ``cannot write /data/out/models/x: No space
    left on device``; nothing a run had published before is changed by the failure.
    """

    def __init__(self, action: str, path: object, cause: str) -> None:
        self.action, self.path, self.cause = action, str(path), cause
        super().__init__(f"cannot {action} {path}: {cause}")

    def __reduce__(self) -> tuple:
        return (type(self), (self.action, self.path, self.cause))

    @classmethod
    def from_os_error(
        cls, error: OSError, action: str = "use", path: object = None
    ) -> WorkspaceError:
        """The one-line form of an ``OSError``: its file name (else ``path``) and its reason.

        pyarrow and Keras raise ``OSError`` without a file name, and pyarrow's text wraps the
        system's reason: the error number gives the plain reason where there is one.
        """
        if error.filename is not None:
            path = error.filename
            if getattr(error, "filename2", None):
                path = f"{path} -> {error.filename2}"
        cause = os.strerror(error.errno) if error.errno else error.strerror or str(error)
        return cls(action, path or "a workspace path", cause or type(error).__name__)
