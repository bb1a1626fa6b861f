"""The real ``spendgate`` command (subprocess) at 80 and 120 columns: tables never break an id,
a model, a number or a date across lines and never exceed the terminal (columns are hidden, with
a footnote, or rows become blocks); one time format, said once; grouped, right-aligned numbers;
``--json`` a plain flag."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from admin_support import AdminGateway, admin_gateway

WIDTHS = (80, 120)
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("cli-tables")) as running:
        for key in ("alice", "dave", "solo", "alice"):
            assert running.chat(key, "Say hello.").status_code == 200
        running.flush()
        yield running


def _out(done: subprocess.CompletedProcess[str], width: int | None = None) -> str:
    assert done.returncode == 0, done.stderr
    if width is not None:
        too_wide = [line for line in done.stdout.splitlines() if len(line) > width]
        assert not too_wide, too_wide
    return done.stdout


# Free-text columns: the only ones whose text may go on to a second line.
FREE_TEXT = {"health", "models", "capabilities", "error", "why", "outcome"}


def _rows(out: str) -> list[list[str]]:
    """The body of the (first) table, one list of cell texts per record. A line that goes on
    with the record above (empty first cell) may only hold free text."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("┡"))
    headers = _headers(out)
    body: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("└"):
            break
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells[0] or not body:
            body.append(cells)
            continue
        for index, text in enumerate(cells):
            if text:
                assert headers[index] in FREE_TEXT, f"{headers[index]!r} broken: {line}"
                body[-1][index] += " " + text
    return body


def _raw_cells(out: str) -> list[list[str]]:
    """Like ``_rows`` but unstripped (to see alignment)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("┡"))
    return [line.split("│")[1:-1] for line in lines[start + 1 :] if line.startswith("│")]


def _headers(out: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith("┃"))
    return [cell.strip() for cell in line.split("┃")[1:-1]]


@pytest.mark.parametrize("width", WIDTHS)
def test_decisions_list_keeps_every_value_whole(gw: AdminGateway, width: int) -> None:
    api = gw.get("/decisions").json()["data"]
    out = _out(gw.cli("--utc", "decisions", "list", columns=width), width)
    rows = _rows(out)
    # One printed line per decision: nothing wrapped onto a second line.
    assert [row[0] for row in rows] == [decision["id"] for decision in api]
    for row, decision in zip(rows, api, strict=True):
        created = datetime.fromisoformat(decision["created_at"]).astimezone(UTC)
        assert row[1] == created.strftime("%Y-%m-%d %H:%M:%S")
        assert decision["actual_model"] in row[2]
    assert "Routing decisions (times in UTC)" in out
    headers = _headers(out)
    if width == 80:
        assert len(headers) < 9
        assert f"({9 - len(headers)} columns hidden: " in out
        assert "widen the terminal or use --json)" in " ".join(out.split())  # may wrap
    else:
        tokens = headers.index("tokens")
        assert [row[tokens] for row in rows] == [f"{d['total_tokens']:,}" for d in api]
        estimate = headers.index("estimate")
        assert all(row[estimate].startswith("≤ $") for row in rows)  # an upper bound, labelled


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    ("command", "path", "first"),
    [
        (("keys", "list"), "/keys", "id"),
        (("models", "list"), "/models", "id"),
        (("models", "status"), "/models/status", "id"),
        (("pricing", "list"), "/pricing", "model"),
    ],
)
def test_listings_fit_without_breaking_a_value(
    gw: AdminGateway, width: int, command: tuple[str, ...], path: str, first: str
) -> None:
    answer = gw.get(path).json()
    records: list[dict[str, Any]] = answer.get("data") or answer["providers"]
    out = _out(gw.cli(*command, columns=width), width)
    rows = _rows(out)
    assert [row[0] for row in rows] == [record[first] for record in records]
    if "hidden" in out:
        footnote = r"\(\d+ columns? hidden: [^)]*; widen the terminal or use --json\)"
        assert re.search(footnote, " ".join(out.split()))


@pytest.mark.parametrize("width", WIDTHS)
def test_budget_numbers_are_grouped_and_right_aligned(gw: AdminGateway, width: int) -> None:
    out = _out(gw.cli("budgets", "list", columns=width), width)
    headers = _headers(out)
    remaining = headers.index("remaining")
    cells = {row[0].strip(): row[remaining] for row in _raw_cells(out)}
    tokens = cells["acme-monthly-tokens"]
    assert re.fullmatch(r" +\d{1,3}(,\d{3})+ ", tokens)  # 1,999,xxx, flush right
    usd = cells["principal-daily-usd"]
    assert re.fullmatch(r" +\$\d\.\d{2,6} ", usd)


def test_too_narrow_for_the_needed_columns_prints_blocks(gw: AdminGateway) -> None:
    api = gw.get("/decisions").json()["data"]
    out = _out(gw.cli("--utc", "decisions", "list", columns=40), 40)
    assert "┏" not in out
    words = out.split()
    assert all(decision["id"] in words for decision in api)  # each id whole
    assert out.count("\n\n") == len(api) - 1  # one block per decision
    assert len(TIME.findall(out)) == len(api)


def test_time_format_is_chosen_once(gw: AdminGateway) -> None:
    [decision] = gw.get("/decisions", params={"principal": "dave"}).json()["data"]
    created = datetime.fromisoformat(decision["created_at"])
    kolkata = {"TZ": "Asia/Kolkata"}
    local = _out(gw.cli("decisions", "list", "--principal", "dave", env=kolkata))
    assert "times in local time (UTC+05:30)" in local
    shifted = created.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert _rows(local)[0][1] == shifted.strftime("%Y-%m-%d %H:%M:%S")
    for options, env in (
        (["--utc"], kolkata),
        (["--time", "utc"], kolkata),
        ([], {**kolkata, "SPENDGATE_TIME": "utc"}),
    ):
        out = _out(gw.cli(*options, "decisions", "list", "--principal", "dave", env=env))
        assert "times in UTC" in out
        assert _rows(out)[0][1] == created.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    shown = _out(gw.cli("--utc", "decisions", "show", decision["id"], env=kolkata))
    assert f"at {created.astimezone(UTC):%Y-%m-%d %H:%M:%S} (times in UTC;" in shown


@pytest.mark.parametrize(
    "command",
    [
        ("budgets", "list"),
        ("decisions", "list"),
        ("keys", "list"),
        ("models", "list"),
        ("pricing", "list"),
        ("usage", "summary"),
    ],
)
def test_json_is_a_plain_flag_in_the_help(gw: AdminGateway, command: tuple[str, ...]) -> None:
    out = _out(gw.cli(*command, "--help", columns=80), 80)
    [line] = [line for line in out.splitlines() if line.startswith("│ --json ")]
    assert "Print JSON instead of a table." in line
    assert "<bool>" not in line
    assert "--no-json" not in out
