"""Tenancy over real HTTP: agent and session ids, which clients choose, count only within their
tenant (the key's project, else principal, else key), so one tenant cannot spend another's
``agent:*`` budget by sending its agent id; and a non-admin key asking which budgets apply
(``/budgets/effective``) learns about its own requests only, never another principal's or
project's live consumption."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from admin_support import AdminGateway, admin_gateway
from gateway_support import settled
from spendgate.domain.scopes import MAX_MEMBER_LENGTH

AGENT = {"x-spendgate-agent-id": "x"}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("tenancy")) as running:
        created = running.post(
            "/budgets",
            json={
                "id": "each-agent",
                "scope": {"kind": "agent", "id": "*"},
                "metric": "requests",
                "interval": "daily",
                "hard_limit": "2",
            },
        )
        assert created.status_code == 201, created.text
        yield running


def _members(reply: Any, budget_id: str) -> dict[str, str]:
    budget = next(item for item in reply.json()["data"] if item["id"] == budget_id)
    return {item["member"]: item["consumed"] for item in budget["consumption"]}


def test_one_tenant_cannot_exhaust_anothers_agent_budget(gw: AdminGateway) -> None:
    # dave (project globex) uses up agent "x"'s budget in globex ...
    assert [gw.chat("dave", headers=AGENT).status_code for _ in range(3)] == [200, 200, 429]
    # ... which is not acme's agent "x": alice's requests still pass.
    assert gw.chat("alice", headers=AGENT).status_code == 200
    assert gw.chat("bob", headers=AGENT).status_code == 200  # same project: same agent
    assert gw.chat("alice", headers=AGENT).status_code == 429
    assert settled(gw.served, "each-agent", "project:globex/x") == Decimal(2)
    assert settled(gw.served, "each-agent", "project:acme/x") == Decimal(2)
    # Keys without a project: their principal, else the key itself, is the tenant.
    assert gw.chat("solo", headers=AGENT).status_code == 200
    assert gw.chat("lone", headers=AGENT).status_code == 200
    assert settled(gw.served, "each-agent", "principal:solo/x") == Decimal(1)
    assert settled(gw.served, "each-agent", "api_key:lone/x") == Decimal(1)
    # The admin sees every tenant's member; a tenant names its agent as it sends it.
    gw.flush()
    members = _members(gw.get("/budgets"), "each-agent")
    assert members["project:globex/x"] == "2"
    assert members["project:acme/x"] == "2"
    effective = gw.get("/budgets/effective", params={"agent": "x"}, token=gw.secrets["alice"])
    assert _members(effective, "each-agent") == {"project:acme/x": "2"}
    top = gw.get("/usage/top", params={"by": "agent"}, token=gw.secrets["dave"]).json()
    assert [(row["key"], row["requests"]) for row in top["data"]] == [("project:globex/x", 3)]
    mine = gw.get("/usage/summary", params={"agent": "x"}, token=gw.secrets["dave"]).json()
    assert mine["requests"] == 3
    assert mine["filters"]["agent"] == "project:globex/x"
    listed = gw.get("/decisions", params={"agent": "x"}, token=gw.secrets["alice"]).json()
    assert {row["agent"] for row in listed["data"]} == {"project:acme/x"}
    # An admin names a tenant's agent with the tenant, or with the filter naming the project.
    both = gw.get("/usage/summary", params={"agent": "project:acme/x"}).json()
    assert both["requests"] == 3
    assert (
        gw.get("/usage/summary", params={"agent": "x", "project": "globex"}).json()["requests"] == 3
    )
    # Naming the key: its agents are members of its project (not of the key itself).
    by_key = gw.get("/usage/summary", params={"agent": "x", "api_key": "dave"}).json()
    assert by_key["filters"]["agent"] == "project:globex/x"
    assert by_key["requests"] == 3
    listed = gw.get("/decisions", params={"agent": "x", "api_key": "alice"}).json()
    assert {row["agent"] for row in listed["data"]} == {"project:acme/x"}
    assert len(listed["data"]) == 2


def test_explain_counts_the_agent_within_the_tenant(gw: AdminGateway) -> None:
    request = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
    body = {"request": request, "agent": "fresh"}
    plan = gw.post("/explain", json=body, token=gw.secrets["dave"]).json()
    assert plan["scopes"]["agent"] == "project:globex/fresh"
    admin = gw.post("/explain", json={**body, "project": "globex"}).json()
    assert admin["scopes"]["agent"] == "project:globex/fresh"


def test_a_budget_for_one_agent_names_its_tenant(gw: AdminGateway) -> None:
    spec = {
        "id": "acme-indexer",
        "scope": {"kind": "agent", "id": "indexer"},
        "metric": "requests",
        "interval": "daily",
        "hard_limit": "1",
    }
    refused = gw.post("/budgets", json=spec)
    assert refused.status_code == 422
    assert refused.json()["error"]["param"] == "body.scope.id"
    assert "project:<project>/indexer" in refused.json()["error"]["message"]
    spec["scope"] = {"kind": "agent", "id": "project:acme/indexer"}
    assert gw.post("/budgets", json=spec).status_code == 201
    indexer = {"x-spendgate-agent-id": "indexer"}
    assert gw.chat("alice", headers=indexer).status_code == 200
    assert gw.chat("bob", headers=indexer).status_code == 429  # acme's indexer: spent
    assert gw.chat("dave", headers=indexer).status_code == 200  # globex's: not this budget


@pytest.mark.parametrize(
    ("key", "params", "param"),
    [
        ("alice", {"principal": "dave"}, "query.principal"),  # another project's principal
        ("alice", {"principal": "bob"}, "query.principal"),  # a colleague's principal budget
        ("alice", {"api_key": "dave"}, "query.api_key"),
        ("alice", {"project": "globex"}, "query.project"),
        ("solo", {"project": "globex"}, "query.project"),  # a key without a project
        ("lone", {"principal": "dave"}, "query.principal"),
    ],
)
def test_effective_budgets_are_the_keys_own(
    gw: AdminGateway, key: str, params: dict[str, str], param: str
) -> None:
    assert gw.chat("dave").status_code == 200  # dave has live consumption to leak
    reply = gw.get("/budgets/effective", params=params, token=gw.secrets[key])
    assert reply.status_code == 403, reply.text
    error = reply.json()["error"]
    assert error["code"] == "forbidden"
    assert error["param"] == param


def test_effective_budgets_of_the_key_itself(gw: AdminGateway) -> None:
    assert gw.chat("alice").status_code == 200
    reply = gw.get("/budgets/effective", token=gw.secrets["alice"])
    assert reply.status_code == 200
    assert set(_members(reply, "principal-daily-usd")) == {"alice"}
    own = {"project": "acme", "principal": "alice", "api_key": "alice"}
    assert gw.get("/budgets/effective", params=own, token=gw.secrets["alice"]).status_code == 200
    # The admin may ask about anyone.
    dave = gw.get("/budgets/effective", params={"principal": "dave"})
    assert set(_members(dave, "principal-daily-usd")) == {"dave"}


def test_an_agent_or_session_id_too_long_for_its_member_is_a_400(gw: AdminGateway) -> None:
    """A member (tenant + "/" + the id as sent) must fit what the journal stores (200
    characters): one that did not would be refused by a database that checks widths, and its
    usage would go uncounted. The longest id that fits passes; one more character is a 400."""
    room = MAX_MEMBER_LENGTH - len("project:acme/")
    fits = gw.chat("alice", headers={"x-spendgate-session-id": "s" * room})
    assert fits.status_code == 200, fits.text
    for header in ("x-spendgate-session-id", "x-spendgate-agent-id"):
        reply = gw.chat("alice", headers={header: "s" * (room + 1)})
        assert reply.status_code == 400, reply.text
        error = reply.json()["error"]
        assert error["param"] == header
        assert f"at most {room} characters" in error["message"]
    gw.flush()
    member = f"project:acme/{'s' * room}"
    listed = gw.get("/decisions", params={"session": member}).json()["data"]
    assert [row["session"] for row in listed] == [member]


def test_a_policy_members_tenant() -> None:
    from spendgate.domain.scopes import ScopeKind, member_tenant

    assert member_tenant(ScopeKind.PROJECT, "acme") == "project:acme"
    assert member_tenant(ScopeKind.PRINCIPAL, "a/b") == "principal:a%2Fb"
    assert member_tenant(ScopeKind.API_KEY, "k1") == "api_key:k1"
    assert member_tenant(ScopeKind.API_KEY, "k1", "project:acme") == "project:acme"
    assert member_tenant(ScopeKind.AGENT, "project:acme/indexer") == "project:acme"
    assert member_tenant(ScopeKind.SESSION, "not-a-member") is None
    assert member_tenant(ScopeKind.GLOBAL, "global") is None
