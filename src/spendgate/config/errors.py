"""Config problems and how they read: one line each, naming the file, the line, the path to
the bad key in YAML terms and why, with a "did you mean" hint where a close choice exists."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from pydantic_core import PydanticCustomError

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config file. ``path`` is in YAML terms; empty for the file."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def render(self, source: str) -> str:
        where = source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(ValueError):
    """An invalid config file. ``str(error)`` is one line per problem."""

    def __init__(self, source: str, problems: Sequence[ConfigProblem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join(self.lines))

    @property
    def lines(self) -> list[str]:
        return [problem.render(self.source) for problem in self.problems]


def invalid(reason: str, at: Loc = ()) -> PydanticCustomError:
    """A validation error with our own wording; ``at`` continues the path below the field
    or model the validator runs on (so the message points at the exact key)."""
    return PydanticCustomError("spendgate", "{reason}", {"reason": reason, "at": at})


def describe(value: object) -> str:
    """A value as an operator wrote it in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, datetime | date):
        return f"the date {value.isoformat()}"
    return f"{value}"


def closest(word: object, choices: Collection[str]) -> str | None:
    """The choice ``word`` was most likely meant to be, if any is close enough."""
    if not isinstance(word, str) or not choices:
        return None
    by_case = {choice.lower(): choice for choice in choices}
    if word.lower() in by_case and by_case[word.lower()] != word:
        return by_case[word.lower()]
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def suggest(word: object, choices: Collection[str]) -> str:
    """`` (did you mean 'x'?)`` when a close choice exists, else an empty string."""
    meant = closest(word, choices)
    return "" if meant is None else f" (did you mean {meant!r}?)"
