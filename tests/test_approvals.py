"""Budget-override approvals end to end, over HTTP with the official SDKs: a request blocked
by a ``require_approval`` limit asks for an approval, a human decides it, the grant lets the
requester through as it says (once, a session, until a time, up to an amount), and nothing
of it is lost on a restart or seen by another project."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from admin_support import ADMIN_TOKEN, AdminGateway, admin_gateway
from gateway_support import open_reservations, openai_client

CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
models:
  - {{id: gpt-4o-mini, provider: alpha, capabilities: [json, tools], cost_tier: low,
     context_window: 128000, max_output_tokens: 16384}}
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false, failover: false}}
keys:
  - {{id: ops, key_env: OPS_KEY, principal: ops, project: platform, permissions: [admin]}}
  - {{id: carol, key_env: CAROL_KEY, principal: carol, project: acme,
     permissions: [approver, override_routing_mode]}}
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
  - {{id: bob, key_env: BOB_KEY, principal: bob, project: acme}}
  - {{id: dave, key_env: DAVE_KEY, principal: dave, project: globex, permissions: [approver]}}
budgets:
  - {{id: acme-tokens, scope: {{kind: project, id: acme}}, metric: tokens, interval: daily,
     hard_limit: 3000, hard_action: require_approval}}
approvals: {{pending_ttl: 1h, max_wait_seconds: 20}}
"""
ENV = {
    "ALPHA_KEY": "sk-alpha",
    "OPS_KEY": "sg-ops",
    "CAROL_KEY": "sg-carol",
    "ALICE_KEY": "sg-alice",
    "BOB_KEY": "sg-bob",
    "DAVE_KEY": "sg-dave",
    "SPENDGATE_ADMIN_TOKEN": ADMIN_TOKEN,
}
HELLO = [{"role": "user", "content": "Say hello."}]
BIG = 5000  # max_tokens that cannot fit the 3,000-token limit: needs an approval
SMALL = 100


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path, CONFIG, ENV) as running:
        yield running


def chat(gw: AdminGateway, key: str, max_tokens: int = BIG, **headers: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": max_tokens},
        headers={"authorization": f"Bearer {gw.secrets[key]}", **headers},
        timeout=60,
    )


def blocked(gw: AdminGateway, key: str, **headers: str) -> str:
    reply = chat(gw, key, **headers)
    assert reply.status_code == 403, reply.text
    error = reply.json()["error"]
    assert error["code"] == "approval_required"
    assert reply.headers["x-spendgate-approval-id"] == error["approval_id"]
    return str(error["approval_id"])


def approve(gw: AdminGateway, approval_id: str, token: str | None = None, **body: Any) -> Any:
    reply = gw.post(f"/approvals/{approval_id}/approve", json=body, token=token or gw.token)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_a_blocked_request_asks_once_however_many_are_blocked(gw: AdminGateway) -> None:
    with ThreadPoolExecutor(max_workers=50) as pool:
        replies = list(pool.map(lambda _: chat(gw, "alice"), range(50)))
    assert {reply.status_code for reply in replies} == {403}
    ids = {reply.json()["error"]["approval_id"] for reply in replies}
    assert len(ids) == 1
    (approval_id,) = ids
    assert {reply.headers["x-spendgate-approval-id"] for reply in replies} == ids
    detail = gw.get(f"/approvals/{approval_id}").json()
    assert (detail["state"], detail["subject"], detail["requester"]) == (
        "pending", "usage-budget:acme-tokens", "alice",
    )  # fmt: skip
    assert (detail["project"], detail["member"]) == ("acme", "acme")
    context = detail["context"]
    assert context["model"] == "gpt-4o-mini"
    assert context["hard_limit"] == "3000"
    assert int(context["request_amount"]) > 3000
    assert context["decision_id"] in {reply.headers["x-spendgate-decision-id"] for reply in replies}
    assert [event["event"] for event in detail["events"]] == ["requested"]
    # Another requester of the same project asks separately.
    assert blocked(gw, "bob") != approval_id
    listed = gw.get("/approvals", params={"state": "pending", "requester": "alice"}).json()
    assert [a["id"] for a in listed["data"]] == [approval_id]


def test_once_lets_exactly_one_of_twenty_racing_retries_through(gw: AdminGateway) -> None:
    approval_id = blocked(gw, "alice")
    approve(gw, approval_id, scope="once", note="release day")
    with ThreadPoolExecutor(max_workers=20) as pool:
        replies = list(pool.map(lambda _: chat(gw, "alice"), range(20)))
    codes = sorted(reply.status_code for reply in replies)
    assert codes == [200] + [403] * 19
    detail = gw.get(f"/approvals/{approval_id}").json()
    assert detail["state"] == "consumed"
    assert [e["event"] for e in detail["events"]] == ["requested", "approved", "consumed"]
    gw.flush()
    [passed] = [reply for reply in replies if reply.status_code == 200]
    decision = gw.get(f"/decisions/{passed.headers['x-spendgate-decision-id']}").json()
    assert "budget_override_applied" in decision["reason_codes"]
    [evaluation] = decision["budget_evaluations"]
    assert evaluation["status"] == "override_applied"
    assert open_reservations(gw.served) == 0


def test_a_requester_never_decides_its_own_and_approvers_stay_in_their_project(
    gw: AdminGateway,
) -> None:
    own = blocked(gw, "carol")  # carol is an approver of acme
    refused = gw.post(f"/approvals/{own}/approve", json={"scope": "once"},
                      token=gw.secrets["carol"])  # fmt: skip
    assert refused.status_code == 403
    assert "its own" in refused.json()["error"]["message"]
    alices = blocked(gw, "alice")
    # dave approves for globex only: acme's requests are not even visible to him.
    assert gw.get(f"/approvals/{alices}", token=gw.secrets["dave"]).status_code == 404
    foreign = gw.post(f"/approvals/{alices}/approve", json={"scope": "once"},
                      token=gw.secrets["dave"])  # fmt: skip
    assert foreign.status_code == 404
    assert gw.get("/approvals", token=gw.secrets["dave"]).json()["data"] == []
    # bob (no approver permission) sees neither alice's request nor may decide it.
    assert gw.get(f"/approvals/{alices}", token=gw.secrets["bob"]).status_code == 404
    # carol approves alice's within acme; a second decision is a 409 with the state.
    approve(gw, alices, token=gw.secrets["carol"], scope="once")
    again = gw.post(f"/approvals/{alices}/deny", json={"reason": "late"})
    assert again.status_code == 409
    assert "approved" in again.json()["error"]["message"]
    # alice reads her own.
    assert gw.get(f"/approvals/{alices}", token=gw.secrets["alice"]).status_code == 200


def test_session_grant_binds_to_its_session(gw: AdminGateway) -> None:
    in_session = {"x-spendgate-session-id": "deploy-42"}
    approval_id = blocked(gw, "alice", **in_session)
    granted = approve(gw, approval_id, scope="session")
    assert granted["session_id"] == "deploy-42"
    assert chat(gw, "alice", **in_session).status_code == 200
    assert chat(gw, "alice", **in_session).status_code == 200  # the whole session
    assert chat(gw, "alice", **{"x-spendgate-session-id": "other"}).status_code == 403
    assert chat(gw, "alice").status_code == 403


def test_until_grant_stops_applying_after_its_time(gw: AdminGateway) -> None:
    approval_id = blocked(gw, "alice")
    until = datetime.now(UTC) + timedelta(seconds=2)
    approve(gw, approval_id, scope="until", until=until.isoformat())
    assert chat(gw, "alice").status_code == 200
    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.2)
    assert chat(gw, "alice").status_code == 403
    past = gw.post(f"/approvals/{blocked(gw, 'bob')}/approve",
                   json={"scope": "until", "until": "2020-01-01T00:00:00Z"})  # fmt: skip
    assert past.status_code == 422
    assert past.json()["error"]["param"] == "body.until"


def test_amount_caps_what_the_grant_lets_through(gw: AdminGateway) -> None:
    approval_id = blocked(gw, "alice")
    # 1,000 tokens beyond the 3,000 limit: a request reserving ~3,500 fits, ~5,000 does not.
    approve(gw, approval_id, scope="until", amount="1000",
            until=(datetime.now(UTC) + timedelta(hours=1)).isoformat())  # fmt: skip
    assert chat(gw, "alice", 3500).status_code == 200
    over = chat(gw, "alice")
    assert over.status_code == 403
    assert over.json()["error"]["approval_id"] != approval_id  # asks anew
    assert chat(gw, "alice", 3500).status_code == 200  # the grant still holds within its cap


def test_deny_and_expiry_never_apply(gw: AdminGateway) -> None:
    denied_id = blocked(gw, "alice")
    reply = gw.post(f"/approvals/{denied_id}/deny", json={"reason": "not this month"})
    assert reply.status_code == 200
    assert (reply.json()["state"], reply.json()["note"]) == ("denied", "not this month")
    fresh = blocked(gw, "alice")  # a denied request does not apply: asked anew
    assert fresh != denied_id
    assert gw.served.gateway.admin is not None
    expired = gw.served.gateway.admin.records.approvals.expire_due(
        datetime.now(UTC) + timedelta(hours=2)
    )
    assert expired >= 1
    detail = gw.get(f"/approvals/{fresh}").json()
    assert detail["state"] == "expired"
    assert detail["events"][-1]["event"] == "expired"
    late = gw.post(f"/approvals/{fresh}/approve", json={"scope": "once"})
    assert late.status_code == 409


def _wait_for_pending(gw: AdminGateway, requester: str) -> str:
    for _ in range(200):
        found = gw.get("/approvals", params={"state": "pending", "requester": requester}).json()
        if found["data"]:
            return str(found["data"][0]["id"])
        time.sleep(0.05)
    raise AssertionError("no pending approval request appeared")


def test_waiting_for_an_approval(gw: AdminGateway) -> None:
    wait = {"x-spendgate-approval-wait": "15"}
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(chat, gw, "alice", BIG, **wait)
        approval_id = _wait_for_pending(gw, "alice")
        time.sleep(0.3)
        assert not waiting.done()
        approve(gw, approval_id, scope="once")
        assert waiting.result(timeout=20).status_code == 200
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(chat, gw, "bob", BIG, **wait)
        bobs = _wait_for_pending(gw, "bob")
        gw.post(f"/approvals/{bobs}/deny", json={"reason": "no"})
        denied = waiting.result(timeout=20)
        assert denied.status_code == 403
        assert "denied (no)" in denied.json()["error"]["message"]
    started = time.monotonic()
    timed_out = chat(gw, "bob", **{"x-spendgate-approval-wait": "1"})
    assert timed_out.status_code == 403
    assert "no decision came in time" in timed_out.json()["error"]["message"]
    assert 1 <= time.monotonic() - started < 10
    assert open_reservations(gw.served) == 0


def test_a_client_leaving_while_it_waits_leaves_nothing_reserved(gw: AdminGateway) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            gw.url + "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": BIG},
            headers={"authorization": "Bearer sg-alice", "x-spendgate-approval-wait": "15"},
            timeout=1,
        )
    approval_id = _wait_for_pending(gw, "alice")
    approve(gw, approval_id, scope="once")
    time.sleep(0.5)
    assert open_reservations(gw.served) == 0
    # The grant was not used by the request that left: the next one gets it.
    assert gw.get(f"/approvals/{approval_id}").json()["state"] == "approved"
    assert chat(gw, "alice").status_code == 200


def test_ask_ahead_and_the_sdk_sees_the_approval_id(gw: AdminGateway) -> None:
    body = {"policy_id": "acme-tokens", "reason": "batch job tonight", "amount": "50000"}
    first = gw.post("/approvals", json=body, token=gw.secrets["bob"])
    assert first.status_code == 201, first.text
    again = gw.post("/approvals", json=body, token=gw.secrets["bob"])
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert (first.json()["reason"], first.json()["amount"]) == ("batch job tonight", "50000")
    not_mine = gw.post("/approvals", json=body, token=gw.secrets["dave"])
    assert not_mine.status_code == 422  # the budget does not apply to globex
    with pytest.raises(openai.PermissionDeniedError) as refused:
        openai_client(gw.served, "sg-bob").chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, max_tokens=BIG
        )
    assert refused.value.code == "approval_required"
    assert refused.value.response.headers["x-spendgate-approval-id"] == first.json()["id"]


def test_dry_run_never_asks_but_says_enforcement_would(gw: AdminGateway) -> None:
    reply = chat(gw, "carol", **{"x-spendgate-routing-mode": "dry_run"})
    assert reply.status_code == 200
    gw.flush()
    decision = gw.get(f"/decisions/{reply.headers['x-spendgate-decision-id']}").json()
    assert decision["would_action"] == "approval_required"
    assert gw.get("/approvals").json()["data"] == []


def test_pending_requests_and_grants_survive_a_restart(tmp_path: Path) -> None:
    with admin_gateway(tmp_path, CONFIG, ENV) as first:
        pending = blocked(first, "bob")
        granted = blocked(first, "alice")
        approve(first, granted, scope="once")
    with admin_gateway(tmp_path, CONFIG, ENV) as second:
        assert second.get(f"/approvals/{pending}").json()["state"] == "pending"
        assert blocked(second, "bob") == pending
        assert chat(second, "alice").status_code == 200
        assert second.get(f"/approvals/{granted}").json()["state"] == "consumed"
        assert chat(second, "alice").status_code == 403


def test_a_thread_safe_desk_wakes_waiters_from_admin_threads(gw: AdminGateway) -> None:
    # Several waiters on one request are all released by one approval made elsewhere.
    wait = {"x-spendgate-approval-wait": "15"}
    results: list[int] = []

    def call() -> None:
        results.append(chat(gw, "alice", SMALL * 30, **wait).status_code)

    first = blocked(gw, "alice")
    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    approve(gw, first, scope="until", until=(datetime.now(UTC) + timedelta(minutes=5)).isoformat())
    for thread in threads:
        thread.join(20)
    assert results == [200, 200, 200]


def test_two_gateways_on_one_database_share_the_pending_request(tmp_path: Path) -> None:
    with admin_gateway(tmp_path, CONFIG, ENV) as one, admin_gateway(tmp_path, CONFIG, ENV) as two:
        with ThreadPoolExecutor(max_workers=20) as pool:
            replies = list(pool.map(lambda n: chat(one if n % 2 else two, "alice"), range(20)))
        assert {reply.status_code for reply in replies} == {403}
        assert len({reply.json()["error"]["approval_id"] for reply in replies}) == 1
        # Approved through one, a request waiting on the other learns it from the database.
        with ThreadPoolExecutor(max_workers=1) as pool:
            waiting = pool.submit(chat, two, "alice", BIG, **{"x-spendgate-approval-wait": "15"})
            time.sleep(0.5)
            approve(one, replies[0].json()["error"]["approval_id"], scope="once")
            assert waiting.result(timeout=20).status_code == 200
