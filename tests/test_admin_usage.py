"""Usage admin API over real HTTP: summary, timeline, top, export; scoping and bad input.

Traffic is real proxy requests (now) plus requests planned at past instants through the running
gateway's own governor and journal (for DST days and CSV-hostile scope names).
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from admin_support import AdminGateway, admin_gateway
from spendgate.admin.usage import neutralise_cell
from spendgate.domain.pricing import Usage
from spendgate.domain.scopes import RequestScopes
from usage_support import record

SPRING_DAY = "2026-03-29"  # Europe/Prague: 23 hours
HOSTILE = RequestScopes(
    project="acme",
    principal="alice",
    api_key="alice",
    agent='=HYPERLINK("http://evil")',
    session="@SUM(A1)",
)


def _past_traffic(gw: AdminGateway) -> None:
    """One request at 20 past every UTC hour from 2026-03-27 to 2026-03-31 (project acme),
    and three with spreadsheet-formula scope names on 2026-02-01."""
    governor = gw.served.gateway.governor
    at = datetime(2026, 3, 27, 0, 20, tzinfo=UTC)
    scopes = RequestScopes(project="acme", principal="alice", api_key="alice")
    while at < datetime(2026, 3, 31, tzinfo=UTC):
        record(
            governor, at, scopes, model="gpt-4o", usage=Usage(input_tokens=100, output_tokens=10)
        )
        at += timedelta(hours=1)
    for minute in range(3):
        record(governor, datetime(2026, 2, 1, 9, minute, tzinfo=UTC), HOSTILE, model="gpt-4o")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("usage-api")) as running:
        for key in ("alice", "alice", "bob", "dave", "solo", "lone"):
            reply = running.chat(
                key, "Say hello.", headers={"x-spendgate-agent-id": f"agent-{key}"}
            )
            assert reply.status_code == 200, reply.text
        _past_traffic(running)
        running.flush()
        yield running


def ok(gw: AdminGateway, path: str, token: object = None, **params: object) -> Any:
    options = {} if token is None else {"token": token}
    reply = gw.get(path, params=params, **options)
    assert reply.status_code == 200, reply.text
    return reply.json()


# --- summary -------------------------------------------------------------------------------


def test_summary_of_the_last_24_hours(gw: AdminGateway) -> None:
    body = ok(gw, "/usage/summary")
    assert body["source"] == "rollups"
    assert body["requests"] == 6
    assert body["settled"] == 6
    assert body["total_tokens"] == body["input_tokens"] + body["output_tokens"] > 0
    assert Decimal(body["cost_usd"]) > 0
    assert body["unpriced_requests"] == 0
    assert isinstance(body["avg_latency_ms"], float)
    start, end = (datetime.fromisoformat(body["window"][k]) for k in ("start", "end"))
    assert end - start == timedelta(hours=24)
    assert start.minute == start.second == 0  # whole UTC hours: the rollups answer exactly


def test_decision_only_filters_use_the_decisions_and_agree(gw: AdminGateway) -> None:
    by_agent = ok(gw, "/usage/summary", agent="project:globex/agent-dave")
    by_session = ok(gw, "/usage/summary", agent="project:globex/agent-dave", principal="dave")
    by_project = ok(gw, "/usage/summary", project="globex")
    # Agents have a rollup with projects, not with principals.
    assert by_agent["source"] == by_project["source"] == "rollups"
    assert by_session["source"] == "decisions"
    fields = (
        "requests", "settled", "total_tokens", "cost_usd", "avg_latency_ms", "rerouted",
        "p95_latency_ms_at_most", "timed_requests",
    )  # fmt: skip
    assert {f: by_agent[f] for f in fields} == {f: by_project[f] for f in fields}
    assert {f: by_session[f] for f in fields} == {f: by_project[f] for f in fields}
    assert by_agent["requests"] == 1
    assert by_agent["timed_requests"] == 1


def test_explicit_range_and_window_shortcut(gw: AdminGateway) -> None:
    day = ok(gw, "/usage/summary", since="2026-03-28", until="2026-03-29")
    assert day["requests"] == 24
    assert day["window"] == {"start": "2026-03-28T00:00:00Z", "end": "2026-03-29T00:00:00Z"}
    week = ok(gw, "/usage/summary", until="2026-03-31T00:00:00Z", window="4d")
    assert week["requests"] == 4 * 24
    odd = ok(gw, "/usage/summary", since="2026-03-28T00:30:00Z", until="2026-03-28T03:00:00Z")
    assert odd["source"] == "decisions"  # not on whole UTC hours
    assert odd["requests"] == 2  # 01:20 and 02:20


# --- timeline ------------------------------------------------------------------------------


def test_daily_timeline_in_prague_across_the_spring_change(gw: AdminGateway) -> None:
    body = ok(
        gw,
        "/usage/timeline",
        bucket="day",
        tz="Europe/Prague",
        since="2026-03-28",
        until="2026-03-31",
    )
    assert body["source"] == "rollups"
    assert body["tz"] == "Europe/Prague"
    starts = [point["start"] for point in body["data"]]
    assert starts == [
        "2026-03-28T00:00:00+01:00",
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
    ]
    assert [point["requests"] for point in body["data"]] == [24, 23, 24]
    # Local days summed from hours equal the UTC total of the same stretch.
    whole = ok(gw, "/usage/summary", since=body["window"]["start"], until=body["window"]["end"])
    assert whole["requests"] == 71
    assert sum(Decimal(p["cost_usd"]) for p in body["data"]) == Decimal(whole["cost_usd"])
    assert sum(p["total_tokens"] for p in body["data"]) == whole["total_tokens"]


def test_hourly_timeline_is_contiguous_with_empty_buckets(gw: AdminGateway) -> None:
    body = ok(gw, "/usage/timeline", bucket="hour", window="6h")
    points = body["data"]
    assert len(points) == 6
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(points))
    assert sum(p["requests"] for p in points) == 6
    assert any(p["requests"] == 0 and p["avg_latency_ms"] is None for p in points)


def test_half_hour_zone_timeline_comes_from_decisions(gw: AdminGateway) -> None:
    body = ok(
        gw,
        "/usage/timeline",
        bucket="day",
        tz="Asia/Kolkata",
        since="2026-03-28",
        until="2026-03-29",
    )
    assert body["source"] == "decisions"
    assert body["data"][0]["start"] == "2026-03-28T00:00:00+05:30"
    assert body["data"][0]["requests"] == 24  # 18:30 UTC to 18:30 UTC: 24 requests at :20


# --- top -----------------------------------------------------------------------------------


def test_top_projects_by_requests(gw: AdminGateway) -> None:
    body = ok(gw, "/usage/top", by="project", metric="requests")
    assert [(e["key"], e["requests"]) for e in body["data"]] == [
        ("acme", 3), (None, 2), ("globex", 1),
    ]  # fmt: skip
    assert body["total_groups"] == 3


def test_top_agents_with_limit(gw: AdminGateway) -> None:
    body = ok(gw, "/usage/top", by="agent", metric="tokens", limit=2)
    assert body["source"] == "rollups"
    assert len(body["data"]) == 2
    assert body["total_groups"] == 5
    # With a principal no rollup has agents: the decisions answer, the same.
    everyone = {e["key"]: e for e in ok(gw, "/usage/top", by="agent", limit=9)["data"]}
    by_dave = ok(gw, "/usage/top", by="agent", principal="dave", limit=9)
    assert by_dave["source"] == "decisions"
    assert by_dave["data"]
    for entry in by_dave["data"]:
        assert entry == everyone[entry["key"]]


# --- scoping -------------------------------------------------------------------------------


def test_a_project_key_sees_only_its_project(gw: AdminGateway) -> None:
    alice = gw.secrets["alice"]
    body = ok(gw, "/usage/summary", token=alice)
    assert body["filters"]["project"] == "acme"
    assert body["requests"] == 3
    top = ok(gw, "/usage/top", token=alice, by="project")
    assert [e["key"] for e in top["data"]] == ["acme"]
    for path in ("/usage/summary", "/usage/timeline", "/usage/top", "/usage/export"):
        reply = gw.get(path, params={"project": "globex"}, token=alice)
        assert reply.status_code == 403, path
        assert reply.json()["error"]["param"] == "query.project"
    export = gw.get("/usage/export", params={"format": "json"}, token=alice).json()
    assert export["data"]
    assert {row["project"] for row in export["data"]} == {"acme"}


def test_keys_without_project_are_confined_to_principal_or_themselves(gw: AdminGateway) -> None:
    solo = ok(gw, "/usage/summary", token=gw.secrets["solo"])
    assert solo["filters"]["principal"] == "solo"
    assert solo["requests"] == 1
    lone = ok(gw, "/usage/summary", token=gw.secrets["lone"])
    assert lone["filters"]["api_key"] == "lone"
    assert lone["source"] == "decisions"
    assert lone["requests"] == 1
    reply = gw.get("/usage/summary", params={"principal": "alice"}, token=gw.secrets["solo"])
    assert reply.status_code == 403


def test_no_credential_is_401(gw: AdminGateway) -> None:
    for path in ("/usage/summary", "/usage/export"):
        reply = gw.get(path, token=None)
        assert reply.status_code == 401
        assert reply.json()["error"]["code"] == "invalid_api_key"


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/usage/timeline", {"tz": "Mars/Olympus"}, "query.tz"),
        ("/usage/timeline", {"bucket": "week"}, "query.bucket"),
        ("/usage/summary", {"since": "2026-03-02", "until": "2026-03-01"}, "query.since"),
        ("/usage/summary", {"since": "yesterday"}, "query.since"),
        ("/usage/summary", {"until": "2026-02-30"}, "query.until"),
        ("/usage/summary", {"window": "forever"}, "query.window"),
        (
            "/usage/summary",
            {"since": "2026-01-01", "until": "2026-01-02", "window": "1d"},
            "query.window",
        ),
        ("/usage/summary", {"since": "0001-01-01"}, "query.since"),
        ("/usage/timeline", {"bucket": "hour", "window": "3000d"}, "query.bucket"),
        ("/usage/top", {"by": "colour"}, "query.by"),
        ("/usage/top", {"metric": "joy"}, "query.metric"),
        ("/usage/top", {"limit": "0"}, "query.limit"),
        ("/usage/export", {"format": "xml"}, "query.format"),
        ("/usage/export", {"limit": "100001"}, "query.limit"),
        ("/usage/export", {"after": "no-such-decision"}, "query.after"),
        ("/usage/summary", {"project": "x" * 201}, "query.project"),
    ],
)
def test_bad_input_is_422_naming_the_parameter(
    gw: AdminGateway, path: str, params: dict[str, str], param: str
) -> None:
    reply = gw.get(path, params=params)
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["param"] == param


# --- export --------------------------------------------------------------------------------


def test_csv_export_neutralises_formulas_and_names_the_file(gw: AdminGateway) -> None:
    reply = gw.get("/usage/export", params={"since": "2026-02-01", "until": "2026-02-02"})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = reply.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert 'filename="spendgate-usage-20260201T000000Z-20260202T000000Z.csv"' in disposition
    assert reply.headers["x-spendgate-total-rows"] == "3"
    rows = list(csv.DictReader(io.StringIO(reply.text)))
    assert len(rows) == 3
    assert {row["agent"] for row in rows} == {'\'=HYPERLINK("http://evil")'}
    assert {row["session"] for row in rows} == {"'@SUM(A1)"}
    assert all(row["cost_usd"] and row["unpriced"] == "false" for row in rows)


def test_neutralise_cell() -> None:
    for dangerous in ("=1+1", "+1", "-1", "@A1", "\tx", "\rx"):
        assert neutralise_cell(dangerous) == "'" + dangerous
    assert neutralise_cell("gpt-4o") == "gpt-4o"
    assert neutralise_cell("") == ""


def test_json_export_pages_with_next_after(gw: AdminGateway) -> None:
    params = {"format": "json", "since": "2026-03-28", "until": "2026-03-29", "limit": 10}
    seen: list[str] = []
    after = None
    while True:
        reply = gw.get("/usage/export", params={**params, **({"after": after} if after else {})})
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/json"
        body = reply.json()
        seen += [row["id"] for row in body["data"]]
        if not body["truncated"]:
            assert body["next_after"] is None
            break
        after = body["next_after"]
        assert after == body["data"][-1]["id"]
    assert len(seen) == len(set(seen)) == 24
    first = gw.get("/usage/export", params=params).json()
    assert first["total"] == 24
    row = first["data"][0]
    assert row["created_at"] == "2026-03-28T00:20:00+00:00"
    assert Decimal(row["cost_usd"]) > 0
    assert row["input_tokens"] == 100


def test_export_file_is_written_by_the_cli_too(gw: AdminGateway, tmp_path: Path) -> None:
    target = tmp_path / "day.csv"
    done = gw.cli(
        "usage", "export", "--since", "2026-03-28", "--until", "2026-03-29", "-o", str(target)
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert len(rows) == 24
