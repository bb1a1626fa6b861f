"""How the CLI prints: Rich tables for people, the API's exact JSON with ``--json``, and one red
line on stderr (exit code 1) for any error."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

from spendgate.cli.clock import clock
from spendgate.cli.table import Column

if TYPE_CHECKING:
    from collections.abc import Callable

    from spendgate.cli.client import AdminClient

__all__ = [
    "Column",
    "JsonOption",
    "cell",
    "cli_errors",
    "console",
    "count",
    "fail",
    "print_json",
    "print_table",
    "say",
    "short_time",
    "time_note",
    "usd",
    "usd_places",
]

# ``metavar=""``: the help shows a plain flag ``--json``, not ``--json <bool>``.
JsonOption = Annotated[
    bool, typer.Option("--json", metavar="", help="Print JSON instead of a table.")
]

console = Console()
_errors = Console(stderr=True)


def print_json(data: Any) -> None:
    """The API's JSON, indented, uncoloured (so it pipes into jq and friends)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def say(text: str) -> None:
    """One line of text that carries what people typed or the gateway wrote (a reason, a
    note, a budget or model name): printed as is, never read as Rich markup, in which a
    ``[...]`` would vanish."""
    console.print(text, highlight=False, markup=False)


def cell(value: Any) -> str:
    """A JSON value as a table cell: nothing shown as a dash, lists joined, yes/no."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(cell(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def short_time(value: Any) -> str:
    """An API date-time (``2026-11-26T03:30:14.883134Z``) as ``2026-11-26 03:30:14`` in the
    zone the user chose (``--time``): the one time format of every table and line."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if not isinstance(value, datetime):
        return cell(value)
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    shown = moment.astimezone(UTC) if clock.utc else moment.astimezone()
    text = shown.strftime("%Y-%m-%d %H:%M:%S")
    # A local time on the other side of a DST change than now says its own offset.
    return text if shown.utcoffset() == _zone().utcoffset(None) else f"{text} {_offset(shown)}"


def time_note() -> str:
    """Which zone the times are in, said once per output: ``times in UTC``."""
    if clock.utc:
        return "times in UTC"
    return f"times in local time (UTC{_offset(datetime.now().astimezone())})"


def _zone() -> tzinfo:
    return UTC if clock.utc else (datetime.now().astimezone().tzinfo or UTC)


def _offset(moment: datetime) -> str:
    text = moment.strftime("%z")  # +0100
    return f"{text[:3]}:{text[3:]}"


def usd(value: Any, places: int | None = None) -> str:
    """A USD amount from the API (a decimal string), thousands grouped, with ``places``
    decimals (default: as many as it needs, two to six); ``None`` is unpriced, never $0."""
    if value is None:
        return "unpriced"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    places = usd_places([value]) if places is None else places
    if amount and abs(amount) < Decimal(1).scaleb(-places):
        return f"< ${Decimal(1).scaleb(-places):.{places}f}"  # never a misleading $0.00
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.{places}f}"


def usd_places(values: Iterable[Any]) -> int:
    """The decimals that show every amount of a column alike: two to six."""
    places = 2
    for value in values:
        try:
            exponent = Decimal(str(value)).normalize().as_tuple().exponent
        except InvalidOperation:
            continue
        if isinstance(exponent, int):
            places = max(places, min(6, -exponent))
    return places


def count(value: Any) -> str:
    """A count (tokens, requests) with thousands grouped: ``1,234,567``."""
    if isinstance(value, int):
        return f"{value:,}"
    try:
        return f"{Decimal(str(value)):,f}"
    except InvalidOperation:
        return cell(value)


def print_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column | tuple[str, str]],
    *,
    title: str | None = None,
) -> None:
    """``rows`` as a table of ``columns`` that fits the terminal; keys may be dotted paths
    (``window.end``) into nested objects. A ``(key, header)`` pair is a never-broken column
    hidden before the ones left of it (the first is always shown). See ``spendgate.cli.table``."""
    from spendgate.cli.table import render

    if not rows:
        console.print(f"{title + ': ' if title else ''}nothing to show.", highlight=False)
        return
    shaped = [
        item if isinstance(item, Column) else Column(item[0], item[1], priority=index)
        for index, item in enumerate(columns)
    ]
    cells = [[cell(_lookup(row, column.key)) for column in shaped] for row in rows]
    render(console, shaped, cells, title=title)


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


def call_and_show(
    ctx: typer.Context,
    call: Callable[[AdminClient], Any],
    json_output: bool,
    show: Callable[[Any], None],
) -> None:
    """One admin API call: its answer as JSON with ``--json``, else as ``show`` renders it;
    an error is one clear line and exit code 1."""
    from spendgate.cli.client import client_from

    with cli_errors():
        answer = call(client_from(ctx))
    if json_output:
        print_json(answer)
    else:
        show(answer)
