"""``spendgate usage …``: the real command (subprocess) against a running gateway."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from admin_support import AdminGateway, admin_gateway
from spendgate.domain.pricing import Usage
from spendgate.domain.scopes import RequestScopes
from usage_support import record

ACME = RequestScopes(project="acme", principal="alice", api_key="alice")
# More than one export page (5000 rows) on 2026-01-10, so the CLI has to follow the cursor.
MANY = 5_003


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("usage-cli")) as running:
        for key in ("alice", "dave", "solo"):
            assert running.chat(key, "Say hello.").status_code == 200
        governor = running.served.gateway.governor
        at = datetime(2026, 3, 28, 0, 20, tzinfo=UTC)
        while at < datetime(2026, 3, 31, tzinfo=UTC):
            record(
                governor, at, ACME, model="gpt-4o", usage=Usage(input_tokens=100, output_tokens=10)
            )
            at += timedelta(hours=1)
        start = datetime(2026, 1, 10, tzinfo=UTC)
        for index in range(MANY):
            record(governor, start + timedelta(seconds=10 * index), ACME, model="gpt-4o")
        running.flush()
        yield running


def run(gw: AdminGateway, *args: str, **options: Any) -> str:
    done = gw.cli("usage", *args, **options)
    assert done.returncode == 0, done.stderr
    return done.stdout


def api(gw: AdminGateway, path: str, **params: str) -> Any:
    reply = gw.get(path, params=params)
    assert reply.status_code == 200
    return reply.json()


SPRING = {"since": "2026-03-28", "until": "2026-03-31"}


def test_summary_table_and_json(gw: AdminGateway) -> None:
    table = run(
        gw, "summary", "--since", "2026-03-28", "--until", "2026-03-29",
        env={"SPENDGATE_TIME": "utc"},
    )  # fmt: skip
    assert "Usage 2026-03-28 00:00:00 → 2026-03-29 00:00:00" in table
    assert "(from rollups; times in UTC)" in table
    lines = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in table.splitlines()
        if line.count("│") == 3
    }
    assert lines["requests"] == "24"
    assert lines["total tokens"] == f"{24 * 110:,}"  # grouped: 2,640
    assert lines["cost"].startswith("$0.")
    as_json = json.loads(
        run(gw, "summary", "--since", "2026-03-28", "--until", "2026-03-29", "--json")
    )
    assert as_json == api(gw, "/usage/summary", since="2026-03-28", until="2026-03-29")


def test_timeline_table_shows_the_23_hour_day_and_bars(gw: AdminGateway) -> None:
    args = (
        "timeline",
        "--bucket",
        "day",
        "--tz",
        "Europe/Prague",
        "--since",
        "2026-03-28",
        "--until",
        "2026-03-31",
    )
    table = run(gw, *args)
    assert "day (Europe/Prague)" in table
    assert "2026-03-29 (23 h)" in table
    rows = [line for line in table.splitlines() if line.startswith("│ 2026-03-")]
    assert len(rows) == 3
    assert all("█" in row for row in rows)
    assert json.loads(run(gw, *args, "--json")) == api(
        gw, "/usage/timeline", bucket="day", tz="Europe/Prague", **SPRING
    )


def test_top_table(gw: AdminGateway) -> None:
    table = run(gw, "top", "--by", "project", "--metric", "requests")
    assert "Top project by requests" in table
    assert "acme" in table
    assert "globex" in table
    assert "(no project)" in table
    body = json.loads(run(gw, "top", "--by", "principal", "--json", "--limit", "1"))
    assert len(body["data"]) == 1
    assert body["total_groups"] == 3


def test_export_csv_to_stdout_follows_pages(gw: AdminGateway) -> None:
    out = run(gw, "export", "--since", "2026-01-10", "--until", "2026-01-11")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == MANY
    assert len({row["id"] for row in rows}) == MANY
    assert out.count("id,created_at,") == 1  # one header, not one per page
    assert [row["created_at"] for row in rows] == sorted(row["created_at"] for row in rows)


def test_export_json_to_a_file(gw: AdminGateway, tmp_path: Path) -> None:
    target = tmp_path / "usage.json"
    done = gw.cli("usage", "export", "--format", "json", "--output", str(target), *_spring())
    assert done.returncode == 0, done.stderr
    assert "wrote 72 decision(s)" in done.stderr
    body = json.loads(target.read_text(encoding="utf-8"))
    assert len(body["data"]) == body["total"] == 72
    assert body["truncated"] is False
    assert body["window"]["start"].startswith("2026-03-28T00:00:00")


def _spring() -> tuple[str, ...]:
    return ("--since", SPRING["since"], "--until", SPRING["until"])


def test_a_project_key_is_confined(gw: AdminGateway) -> None:
    body = json.loads(run(gw, "summary", "--json", token=gw.secrets["alice"]))
    assert body["filters"]["project"] == "acme"
    done = gw.cli("usage", "summary", "--project", "globex", token=gw.secrets["alice"])
    assert done.returncode == 1
    assert done.stderr.strip().startswith("not allowed:")
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("timeline", "--tz", "Mars/Olympus"), "unknown timezone 'Mars/Olympus'"),
        (
            ("summary", "--since", "2026-03-02", "--until", "2026-03-01"),
            "since must be before until",
        ),
        (("export", "--window", "forever"), "(param: query.window)"),
    ],
)
def test_errors_are_one_line_and_exit_1(
    gw: AdminGateway, args: tuple[str, ...], expected: str
) -> None:
    done = gw.cli("usage", *args)
    assert done.returncode == 1
    assert expected in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stdout == ""


def test_unreachable_daemon(gw: AdminGateway) -> None:
    done = gw.cli("usage", "summary", url="http://127.0.0.1:9")
    assert done.returncode == 1
    assert "cannot reach spendgate at http://127.0.0.1:9" in done.stderr
