"""``/api/v1/decisions`` over real HTTP: listing with filters and cursor pages, one decision in
full, and scoping (a project key never reads another project's decisions: 403 for a filter
asking for them, 404 for one of them by id)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from admin_support import AdminGateway, admin_gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("decisions")) as running:
        headers = {"x-spendgate-agent-id": "indexer", "x-spendgate-session-id": "s-1"}
        for key in ("alice", "alice", "bob", "dave", "solo"):
            assert running.chat(key, "Say hello.").status_code == 200
        assert running.chat("alice", "Summarise it.", headers=headers).status_code == 200
        running.flush()
        yield running


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["data"]]


def test_list_newest_first_with_summary_fields(gw: AdminGateway) -> None:
    response = gw.get("/decisions")
    rows = response.json()["data"]
    assert len(rows) == 6
    times = [row["created_at"] for row in rows]
    assert times == sorted(times, reverse=True)
    row = rows[0]
    assert row["principal"] == "alice"
    assert row["agent"] == "project:acme/indexer"  # agent and session ids within the tenant
    assert row["session"] == "project:acme/s-1"
    assert row["requested_model"] == "gpt-4o"
    assert row["actual_model"] == "gpt-4o-mini"
    assert row["routing_action"] == "degrade"
    assert row["status"] == "ok"
    assert row["total_tokens"] > 0
    assert row["actual_cost_usd"] is not None
    assert response.json()["next_cursor"] is None


def test_filters(gw: AdminGateway) -> None:
    assert len(_ids(gw.get("/decisions", params={"project": "acme"}))) == 4
    assert len(_ids(gw.get("/decisions", params={"principal": "alice"}))) == 3
    assert len(_ids(gw.get("/decisions", params={"api_key": "dave"}))) == 1
    assert len(_ids(gw.get("/decisions", params={"agent": "project:acme/indexer"}))) == 1
    assert len(_ids(gw.get("/decisions", params={"session": "s-1", "project": "acme"}))) == 1
    assert _ids(gw.get("/decisions", params={"session": "s-1", "project": "globex"})) == []
    assert len(_ids(gw.get("/decisions", params={"model": "gpt-4o-mini"}))) == 6
    assert _ids(gw.get("/decisions", params={"model": "claude-opus-4"})) == []
    assert len(_ids(gw.get("/decisions", params={"action": "degrade"}))) == 6
    assert _ids(gw.get("/decisions", params={"action": "block"})) == []
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert _ids(gw.get("/decisions", params={"since": future})) == []
    assert len(_ids(gw.get("/decisions", params={"until": future}))) == 6


def test_cursor_pages(gw: AdminGateway) -> None:
    everything = _ids(gw.get("/decisions"))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = gw.get("/decisions", params=params).json()
        seen += [row["id"] for row in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 2
    assert seen == everything


def test_bad_query_parameters(gw: AdminGateway) -> None:
    cases = {
        "query.action": {"action": "explode"},
        "query.limit": {"limit": 0},
        "query.since": {"since": "yesterday-ish"},
        "query.cursor": {"cursor": "!!!"},
    }
    for param, params in cases.items():
        response = gw.get("/decisions", params=params)
        assert response.status_code == 422, params
        assert response.json()["error"]["param"] == param
    now = datetime.now(UTC)
    backwards = {"since": now.isoformat(), "until": (now - timedelta(days=1)).isoformat()}
    response = gw.get("/decisions", params=backwards)
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "query.since"


def test_show_one_in_full(gw: AdminGateway) -> None:
    decision_id = _ids(gw.get("/decisions", params={"api_key": "dave"}))[0]
    response = gw.get(f"/decisions/{decision_id}")
    assert response.status_code == 200
    data = response.json()
    assert data["id"] == decision_id
    assert data["scopes"]["project"] == "globex"
    assert data["explanation"]
    assert data["reason_codes"]
    [row] = [d for d in gw.get("/decisions").json()["data"] if d["id"] == decision_id]
    assert row["headline"] in data["explanation"]  # what was decided, not the mode
    assert not row["headline"].startswith("Mode ")
    assert data["complexity"]["terms"]
    assert {c["model"] for c in data["candidates"]} >= {"gpt-4o-mini", "gpt-4o"}
    assert [c["model"] for c in data["candidates"] if c["chosen"]] == ["gpt-4o-mini"]
    [daily] = [e for e in data["budget_evaluations"] if e["policy_id"] == "principal-daily-usd"]
    assert daily["member"] == "dave"
    assert daily["hard_limit"] == "5"
    assert data["status"] == "ok"
    assert data["usage"]["input_tokens"] > 0
    assert data["usage"]["output_tokens"] > 0
    assert data["actual_cost_usd"] is not None
    assert data["latency_ms"] is not None
    assert data["settled_at"] is not None


def test_unknown_decision_is_404(gw: AdminGateway) -> None:
    response = gw.get("/decisions/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_project_key_is_confined_to_its_project(gw: AdminGateway) -> None:
    alice = gw.secrets["alice"]
    own = gw.get("/decisions", token=alice).json()["data"]
    assert {row["project"] for row in own} == {"acme"}
    assert len(own) == 4  # bob's decisions too: same project
    assert len(_ids(gw.get("/decisions", token=alice, params={"principal": "bob"}))) == 1
    refused = gw.get("/decisions", token=alice, params={"project": "globex"})
    assert refused.status_code == 403
    assert refused.json()["error"]["param"] == "query.project"
    dave_decision = _ids(gw.get("/decisions", params={"api_key": "dave"}))[0]
    assert gw.get(f"/decisions/{dave_decision}", token=alice).status_code == 404
    assert gw.get(f"/decisions/{own[0]['id']}", token=alice).status_code == 200


def test_principal_key_without_project_is_confined_to_its_principal(gw: AdminGateway) -> None:
    solo = gw.secrets["solo"]
    rows = gw.get("/decisions", token=solo).json()["data"]
    assert [row["principal"] for row in rows] == ["solo"]
    assert gw.get("/decisions", token=solo, params={"principal": "alice"}).status_code == 403
    # A key with neither sees only its own key's decisions (none here).
    assert _ids(gw.get("/decisions", token=gw.secrets["lone"])) == []


def test_auth_required(gw: AdminGateway) -> None:
    assert gw.get("/decisions", token=None).status_code == 401
    assert gw.get("/decisions/x", token="wrong").status_code == 401
