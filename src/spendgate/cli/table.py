"""Tables that fit the terminal without breaking a value.

An id, a model name, a number or a date is never split across lines: such columns do not wrap.
When the table is wider than the terminal, the least important columns are hidden (highest
``priority`` first) and a footnote says how many; when even the columns that must stay do not
fit, each row is printed as a block of ``header  value`` lines instead. Only free-text columns
(``wrap=True``: a reason, an error) wrap, between words. Numeric columns are right-aligned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.box import HEAVY_HEAD
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

__all__ = ["Column", "render"]

# A free-text column narrower than this is not worth reading: hide columns instead.
_TEXT_MIN = 16
# A table's own width beyond its cells: "│ " + " │ " between cells + " │".
_EDGE = 1
_PER_COLUMN = 3
_NUMERIC = re.compile(r"^[≤<>~+\-$ ]*[\d,]+(\.\d+)?( ?(%|ms|s|h))?$")
_EMPTY = "—"
# Above this many rows a table of one-line cells is written directly (see ``_write_plain``).
_FAST_ROWS = 200


@dataclass(frozen=True, slots=True)
class Column:
    """``key`` into each row (dotted for nested objects), its ``header``; ``priority`` 0 is
    always shown, higher numbers are hidden first; ``wrap`` marks free text."""

    key: str
    header: str
    priority: int = 0
    wrap: bool = False


def render(
    console: Console,
    columns: Sequence[Column],
    cells: Sequence[Sequence[str]],
    *,
    title: str | None,
) -> None:
    """Print ``cells`` (one list per row, in ``columns`` order) fitted to ``console.width``."""
    needs = [_need(column, [row[i] for row in cells]) for i, column in enumerate(columns)]
    shown = _fit(columns, needs, console.width)
    if title:
        console.print(title, style="bold", highlight=False, markup=False)
    if shown is None:
        _vertical(console, columns, cells)
        return
    picked = [columns[i] for i in shown]
    widths = [needs[i] for i in shown]
    body = [[row[i] for i in shown] for row in cells]
    aligned = [_numeric(row[i] for row in body) for i in range(len(shown))]
    if len(body) > _FAST_ROWS and not any(column.wrap for column in picked):
        _write_plain(console, [column.header for column in picked], widths, aligned, body)
    else:
        _rich_table(console, picked, widths, aligned, body)
    hidden = len(columns) - len(shown)
    if hidden:
        names = ", ".join(columns[i].header for i in range(len(columns)) if i not in shown)
        plural = "column" if hidden == 1 else "columns"
        console.print(
            f"({hidden} {plural} hidden: {names}; widen the terminal or use --json)",
            highlight=False,
            markup=False,
        )


def _rich_table(
    console: Console,
    columns: Sequence[Column],
    widths: Sequence[int],
    aligned: Sequence[bool],
    cells: Sequence[Sequence[str]],
) -> None:
    table = Table(header_style="bold")
    for column, width, numeric in zip(columns, widths, aligned, strict=True):
        table.add_column(
            column.header,
            justify="right" if numeric else "left",
            no_wrap=not column.wrap,
            overflow="fold",
            width=None if column.wrap else width,
        )
    for row in cells:
        table.add_row(*row)
    console.print(table)


def _write_plain(
    console: Console,
    headers: Sequence[str],
    widths: Sequence[int],
    aligned: Sequence[bool],
    cells: Sequence[Sequence[str]],
) -> None:
    """The same table as Rich draws it, written as text: Rich takes ~1 ms a row, too slow for
    the whole catalog (3,000 rows). Only for tables whose cells all fit on one line."""
    box = HEAVY_HEAD
    padded = [width + 2 for width in widths]

    def line(values: Sequence[str], left: str, middle: str, right: str) -> str:
        parts = [
            f" {_pad(value, width, right_align)} "
            for value, width, right_align in zip(values, widths, aligned, strict=True)
        ]
        return left + middle.join(parts) + right

    out = [box.get_top(padded)]
    out.append(line(headers, box.head_left, box.head_vertical, box.head_right))
    out.append(box.get_row(padded, level="head"))
    out.extend(line(row, box.mid_left, box.mid_vertical, box.mid_right) for row in cells)
    out.append(box.get_bottom(padded))
    console.file.write("\n".join(out) + "\n")
    console.file.flush()


def _pad(value: str, width: int, right: bool) -> str:
    gap = " " * (width - cell_len(value))
    return gap + value if right else value + gap


def _fit(columns: Sequence[Column], needs: Sequence[int], width: int) -> list[int] | None:
    """The indexes of the columns to show, or ``None``: print vertically."""
    shown = list(range(len(columns)))
    while sum(needs[i] for i in shown) + _PER_COLUMN * len(shown) + _EDGE > width:
        hideable = [i for i in shown if columns[i].priority > 0]
        if not hideable:
            return None
        shown.remove(max(hideable, key=lambda i: (columns[i].priority, i)))
    return shown


def _need(column: Column, values: Sequence[str]) -> int:
    """The narrowest this column can be without breaking a value (or its header)."""
    widest = max([cell_len(column.header), *(cell_len(value) for value in values)])
    return min(widest, _TEXT_MIN) if column.wrap else widest


def _numeric(values: Iterable[str]) -> bool:
    texts = [value for value in values if value != _EMPTY]
    return bool(texts) and all(_NUMERIC.match(text) for text in texts)


def _vertical(console: Console, columns: Sequence[Column], cells: Sequence[Sequence[str]]) -> None:
    """Each row as a block of ``header  value`` lines, blocks separated by a blank line; a
    value too long for its line goes on the next one, indented, rather than being broken."""
    label = max(cell_len(column.header) for column in columns)
    for number, row in enumerate(cells):
        if number:
            console.print()
        for column, value in zip(columns, row, strict=True):
            if column.wrap or label + 2 + cell_len(value) <= console.width:
                line = f"{column.header.ljust(label)}  {value}"
            else:
                line = f"{column.header}\n  {value}"
            console.print(line, highlight=False, markup=False)
