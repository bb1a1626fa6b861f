"""Records changed through one replica apply on the other within a second: two ``spendgate
serve`` processes on one PostgreSQL database and one Redis ledger (skipped, saying why,
without either). A budget disabled, enabled again and deleted; a price set and deleted; an
approval granted; an ``approve once`` grant that requests on both replicas race for, used by
exactly one of them; a rate limit created and deleted."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from decimal import Decimal
from typing import Any

import httpx
import pytest

from postgres_support import throwaway_postgres
from redis_support import REDIS_URL, connect, drop_prefix, fresh_prefix, run
from serve_support import RunningServe, serve_process
from spendgate.mock_upstream.runner import MockUpstreamThread
from spendgate.store.migrate import migrate

ADMIN = {"authorization": "Bearer sg-replica-records-admin"}
# One key (principal and project of its own) per test: the tests share the two replicas.
SECRETS = {
    "dora": "sg-replica-dora",  # budgets disabled and deleted
    "pat": "sg-replica-pat",  # prices
    "amy": "sg-replica-amy",  # an approval granted
    "rita": "sg-replica-rita",  # an approve-once grant raced for
    "sam": "sg-replica-sam",  # the sentinel of rita's grant
    "rose": "sg-replica-rose",  # a rate limit created and deleted
}
ENV = {
    "SPENDGATE_ADMIN_TOKEN": ADMIN["authorization"].removeprefix("Bearer "),
    "UPSTREAM_KEY": "sk-replica-upstream",
    **{f"{name.upper()}_KEY": secret for name, secret in SECRETS.items()},
}
# "Within a second", measured from the admin call's answer to a request's on the other
# replica: the watcher's half-second interval, its reload, and a request on a loaded machine.
WITHIN = 1.5


def _config(mock: str, database: str, prefix: str) -> str:
    keys = "\n".join(
        f"  - {{id: {name}, key_env: {name.upper()}_KEY, principal: {name}, project: {name}}}"
        for name in SECRETS
    )
    return f"""
providers: [{{id: alpha, kind: openai, base_url: "{mock}", api_key_env: UPSTREAM_KEY}}]
models: [{{id: gpt-4o-mini, provider: alpha}}]
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false}}
keys:
{keys}
database_url: "{database}"
ledger_url: "{REDIS_URL}"
ledger_prefix: "{prefix}"
"""


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServe, RunningServe]]:
    """Replicas a and b, started once for the module (each test uses its own key)."""
    run(_check_redis())
    prefix = fresh_prefix()
    with (
        throwaway_postgres() as database,
        MockUpstreamThread(latency_ms=0) as mock,
        ExitStack() as stack,
    ):
        migrate(database)  # as `spendgate db upgrade` does, before the replicas start
        text = _config(mock.openai_base_url, database, prefix)
        root = tmp_path_factory.mktemp("replicas")
        started = []
        for name in ("a", "b"):
            folder = root / name
            folder.mkdir()
            started.append(stack.enter_context(serve_process(folder, text, ENV)))
        try:
            yield started[0], started[1]
        finally:
            stack.close()
            run(_drop(prefix))


async def _check_redis() -> None:
    client = await connect()  # skips the module without a Redis server
    await client.aclose()


async def _drop(prefix: str) -> None:
    client = await connect()
    await drop_prefix(client, prefix)
    await client.aclose()


def _chat(replica: RunningServe, key: str) -> httpx.Response:
    return httpx.post(
        replica.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {SECRETS[key]}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def _admin(replica: RunningServe, method: str, path: str, **options: Any) -> httpx.Response:
    return httpx.request(method, replica.url + "/api/v1" + path, headers=ADMIN, timeout=30,
                         **options)  # fmt: skip


def _within(check: Callable[[], bool], what: str, seconds: float = WITHIN) -> None:
    """Poll ``check`` (a request to the other replica) until it holds, ``seconds`` at most."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {seconds}s"
        time.sleep(0.05)


def _budget(budget_id: str, key: str, **fields: Any) -> dict[str, Any]:
    return {"id": budget_id, "scope": {"kind": "project", "id": key}, "metric": "requests",
            "interval": "daily", "hard_limit": 1, **fields}  # fmt: skip


def test_a_budget_disabled_or_deleted_on_one_replica_stops_blocking_on_the_other(
    replicas: tuple[RunningServe, RunningServe],
) -> None:
    a, b = replicas
    assert _admin(a, "POST", "/budgets", json=_budget("dora-cap", "dora")).status_code == 201
    _within(lambda: _chat(b, "dora").status_code == 429, "b applying the new budget")
    assert _admin(a, "POST", "/budgets/dora-cap/disable").status_code == 200
    _within(lambda: _chat(b, "dora").status_code == 200, "b dropping the disabled budget")
    assert _admin(a, "POST", "/budgets/dora-cap/enable").status_code == 200
    _within(lambda: _chat(b, "dora").status_code == 429, "b applying the enabled budget")
    assert _admin(a, "DELETE", "/budgets/dora-cap").status_code == 204
    _within(lambda: _chat(b, "dora").status_code == 200, "b dropping the deleted budget")
    assert [_chat(b, "dora").status_code for _ in range(3)] == [200] * 3


def test_a_rate_limit_created_on_one_replica_limits_the_other(
    replicas: tuple[RunningServe, RunningServe],
) -> None:
    a, b = replicas
    limit = {"id": "rose-rpm", "scope": {"kind": "project", "id": "rose"},
             "requests_per_minute": 1}  # fmt: skip
    assert _admin(a, "POST", "/rate-limits", json=limit).status_code == 201
    _within(lambda: _chat(b, "rose").status_code == 429, "b applying the new rate limit")
    # One bucket for both (in Redis): a's next request finds it as b left it.
    assert _chat(a, "rose").status_code == 429
    assert _admin(a, "DELETE", "/rate-limits/rose-rpm").status_code == 204
    _within(lambda: _chat(b, "rose").status_code == 200, "b dropping the deleted rate limit")


def _recorded_cost(replica: RunningServe, reply: httpx.Response) -> tuple[Decimal, Decimal]:
    """(the cost ``replica`` recorded for the request ``reply`` answered, that request's
    usage at 7 / 11 USD per 1M input / output tokens)."""
    assert reply.status_code == 200, reply.text
    decision_id = reply.headers["x-spendgate-decision-id"]
    deadline = time.monotonic() + 10
    while True:  # journaled off the request path: a moment later
        found = _admin(replica, "GET", f"/decisions/{decision_id}")
        if found.status_code == 200 and found.json()["actual_cost_usd"] is not None:
            break
        assert time.monotonic() < deadline, found.text
        time.sleep(0.05)
    decision = found.json()
    usage = decision["usage"]
    assert usage["cached_input_tokens"] == 0
    at_new_price = (usage["input_tokens"] * 7 + usage["output_tokens"] * 11) / Decimal(10**6)
    return Decimal(decision["actual_cost_usd"]), at_new_price


def test_a_price_set_on_one_replica_prices_the_requests_of_the_other(
    replicas: tuple[RunningServe, RunningServe],
) -> None:
    a, b = replicas
    cost, at_new_price = _recorded_cost(b, _chat(b, "pat"))
    assert 0 < cost < at_new_price  # the catalog's price, far below the one set next
    price = {"model": "gpt-4o-mini", "input_per_mtok": "7", "output_per_mtok": "11"}
    created = _admin(a, "POST", "/pricing", json=price)
    assert created.status_code == 201, created.text

    def priced_anew() -> bool:
        cost, at_new_price = _recorded_cost(b, _chat(b, "pat"))
        return cost == at_new_price

    _within(priced_anew, "b recording the new price", WITHIN + 0.5)  # + reading the cost
    cost, at_new_price = _recorded_cost(b, _chat(b, "pat"))
    assert cost == at_new_price
    # Deleted: b goes back to the catalog's price (a row fewer, the same newest id).
    assert _admin(a, "DELETE", f"/pricing/{created.json()['id']}").status_code == 204
    _within(lambda: not priced_anew(), "b dropping the deleted price", WITHIN + 0.5)


def _blocked(replica: RunningServe, key: str) -> str:
    """A request refused for approval; the id of the approval request it got."""
    reply = _chat(replica, key)
    assert reply.status_code == 403, reply.text
    approval_id: str = reply.json()["error"]["approval_id"]
    return approval_id


def _approve(replica: RunningServe, approval_id: str, **decision: str) -> None:
    approved = _admin(replica, "POST", f"/approvals/{approval_id}/approve", json=decision)
    assert approved.status_code == 200, approved.text


def _use_up_an_approval_budget(a: RunningServe, b: RunningServe, key: str) -> str:
    """A budget of one request a day asking for approval past it, created through a, used
    up, and known to b: the approval request b's refusal asked."""
    spec = _budget(f"{key}-cap", key, hard_action="require_approval")
    assert _admin(a, "POST", "/budgets", json=spec).status_code == 201
    assert _chat(a, key).status_code == 200
    _within(lambda: _chat(b, key).status_code == 403, "b applying the new budget")
    return _blocked(b, key)


def test_an_approval_granted_on_one_replica_lets_the_request_through_on_the_other(
    replicas: tuple[RunningServe, RunningServe],
) -> None:
    a, b = replicas
    approval_id = _use_up_an_approval_budget(a, b, "amy")
    assert _blocked(a, "amy") == approval_id  # one pending request across both replicas
    _approve(a, approval_id, scope="until", until="2999-01-01T00:00:00Z")
    _within(lambda: _chat(b, "amy").status_code == 200, "b applying the grant")
    reply = _chat(b, "amy")
    assert reply.status_code == 200
    assert reply.headers["x-spendgate-budget-status"] == "override_applied"


def test_an_approve_once_grant_is_used_by_exactly_one_request_across_the_replicas(
    replicas: tuple[RunningServe, RunningServe],
) -> None:
    a, b = replicas
    raced = _use_up_an_approval_budget(a, b, "rita")
    sentinel = _use_up_an_approval_budget(a, b, "sam")
    _approve(a, raced, scope="once")
    # b learns of grants by reloading all of them at once: once it applies sam's, approved
    # after rita's, it holds rita's too (a request of rita's to b would use it up).
    _approve(a, sentinel, scope="until", until="2999-01-01T00:00:00Z")
    _within(lambda: _chat(b, "sam").status_code == 200, "b applying the grants")

    async def race() -> Counter[int]:
        limits = httpx.Limits(max_connections=40, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:

            async def call(replica: RunningServe) -> int:
                reply = await client.post(
                    replica.url + "/v1/chat/completions",
                    headers={"authorization": f"Bearer {SECRETS['rita']}"},
                    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                )
                return reply.status_code

            return Counter(await asyncio.gather(*(call((a, b)[i % 2]) for i in range(40))))

    statuses = asyncio.run(race())
    assert statuses == {200: 1, 403: 39}, statuses
    approval = _admin(b, "GET", f"/approvals/{raced}").json()
    assert approval["state"] == "consumed"
    assert [event["event"] for event in approval["events"]].count("consumed") == 1
    # Used up on both replicas: rita is asked for approval again, wherever she goes.
    assert [_chat(replica, "rita").status_code for replica in (a, b, a, b)] == [403] * 4
