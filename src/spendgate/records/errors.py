"""Why a change to a runtime record was refused. The admin API maps each to its HTTP answer;
the service itself knows nothing of HTTP."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ConfigManagedError", "Problem", "RecordConflictError", "RecordError",
           "RecordForbiddenError", "RecordInvalidError", "RecordNotFoundError"]  # fmt: skip

# (path inside the submitted document, e.g. "scope.id" or "[3].input_per_mtok"; message)
Problem = tuple[str, str]


class RecordError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RecordNotFoundError(RecordError):
    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"No {what} with id {ident!r}.")
        self.what = what
        self.ident = ident


class ConfigManagedError(RecordError):
    """The record comes from the config file (or the bundled catalog): read-only at runtime."""

    def __init__(self, what: str, ident: str, source: str) -> None:
        super().__init__(f"The {what} {ident!r} is managed by the config file {source}.")
        self.what = what
        self.ident = ident
        self.source = source


class RecordConflictError(RecordError):
    """The id is taken (by a config record or another runtime record)."""


class RecordForbiddenError(RecordError):
    """The caller may see the record but not make this change (e.g. decide its own request)."""


class RecordInvalidError(RecordError):
    """The submitted record is invalid; every problem is listed, each at its path."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{path}: {why}" if path else why for path, why in problems))
