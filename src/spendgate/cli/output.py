"""How the CLI prints: Rich tables for people, the API's exact JSON with ``--json``, and one red
line on stderr (exit code 1) for any error."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

__all__ = [
    "JsonOption",
    "cell",
    "cli_errors",
    "console",
    "fail",
    "print_json",
    "print_table",
    "short_time",
    "usd",
]

JsonOption = Annotated[bool, typer.Option("--json", help="Print the exact JSON the API returned.")]

console = Console()
_errors = Console(stderr=True)


def print_json(data: Any) -> None:
    """The API's JSON, indented, uncoloured (so it pipes into jq and friends)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def cell(value: Any) -> str:
    """A JSON value as a table cell: nothing shown as a dash, lists joined, yes/no."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(cell(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def short_time(value: Any) -> str:
    """``2026-11-26T03:30:14.883134Z`` → ``2026-11-26 03:30:14Z`` (tables stay narrow)."""
    if not isinstance(value, str) or "T" not in value:
        return cell(value)
    day, _, rest = value.partition("T")
    clock = rest[:8]
    zone = rest[8:].lstrip("0123456789.")
    return f"{day} {clock}{zone}"


def usd(value: Any) -> str:
    """A USD amount from the API; ``None`` is an unpriced cost, never $0."""
    return "unpriced" if value is None else f"${value}"


def print_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[tuple[str, str]],
    *,
    title: str | None = None,
) -> None:
    """``rows`` as a Rich table of ``columns`` (key, header); keys may be dotted paths
    (``window.end``) into nested objects."""
    table = Table(title=title, title_justify="left", header_style="bold")
    for index, (_key, header) in enumerate(columns):
        # The first column names the row (a model, a policy id): never broken mid-name.
        table.add_column(header, overflow="fold", no_wrap=index == 0)
    for row in rows:
        table.add_row(*(cell(_lookup(row, key)) for key, _header in columns))
    if not rows:
        console.print(f"{title + ': ' if title else ''}nothing to show.")
        return
    console.print(table)


def _lookup(row: Mapping[str, Any], key: str) -> Any:
    value: Any = row
    for part in key.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def fail(message: str) -> NoReturn:
    """Print ``message`` as one red line on stderr and exit with status 1."""
    _errors.print(message, style="red", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@contextmanager
def cli_errors() -> Iterator[None]:
    """``with cli_errors():`` turns an ``AdminClientError`` into ``fail(str(error))``."""
    from spendgate.cli.client import AdminClientError

    try:
        yield
    except AdminClientError as error:
        fail(str(error))
