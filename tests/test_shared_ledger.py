"""Several gateway processes sharing one budget through the Redis ledger (skipped, saying
why, without Redis): zero overspend across processes, their journals adding up to the
ledger, no reservation left behind; an unreachable Redis refuses requests with 503 when
``ledger_failure`` is ``closed``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from redis_support import REDIS_URL, connect, drop_prefix, run
from serve_support import RunningServe, serve_process
from spendgate.domain.budgets import CounterKey, CounterState
from spendgate.ledger.redis import RedisLedger
from spendgate.mock_upstream.runner import MockUpstreamThread

KEY = "sg-shared-ledger-acme"
ENV = {"ACME_KEY": KEY, "SPENDGATE_ADMIN_TOKEN": "sg-shared-ledger-admin"}
LIMIT = 30


def config(mock_url: str, database: str, prefix: str, ledger_url: str = REDIS_URL) -> str:
    return f"""
providers: [{{id: alpha, kind: openai, base_url: "{mock_url}", api_key_env: ACME_KEY}}]
models: [{{id: gpt-4o-mini, provider: alpha}}]
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false}}
keys: [{{id: acme, key_env: ACME_KEY, principal: alice, project: acme}}]
budgets:
  - {{id: acme-requests, scope: {{kind: project, id: acme}}, metric: requests,
     interval: daily, hard_limit: {LIMIT}}}
database_url: "{database}"
ledger_url: "{ledger_url}"
ledger_prefix: "{prefix}"
"""


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    return redis_prefix


def _chat(url: str) -> int:
    response = httpx.post(
        url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {KEY}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    return response.status_code


def test_two_processes_admit_exactly_what_the_budget_allows(tmp_path: Path, prefix: str) -> None:
    with MockUpstreamThread(latency_ms=20) as mock, ExitStack() as stack:
        database = f"sqlite:///{tmp_path / 'shared.db'}"
        text = config(mock.openai_base_url, database, prefix)
        gateways: list[RunningServe] = []
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            gateways.append(stack.enter_context(serve_process(folder, text, ENV)))

        async def flood() -> list[int]:
            loop = asyncio.get_running_loop()
            return list(
                await asyncio.gather(
                    *(loop.run_in_executor(None, _chat, gateways[i % 2].url) for i in range(100))
                )
            )

        statuses = Counter(asyncio.run(flood()))
        assert statuses == {200: LIMIT, 429: 100 - LIMIT}, statuses
        # Both journals (one database) hold every decision; the ledger's counter is the
        # settled count, with nothing left reserved.
        admin = {"authorization": f"Bearer {ENV['SPENDGATE_ADMIN_TOKEN']}"}
        for gateway in gateways:
            summary = httpx.get(
                gateway.url + "/api/v1/usage/summary", headers=admin, params={"window": "24h"}
            )
            assert summary.status_code == 200

    async def counters() -> tuple[Decimal, Decimal, int]:
        client = await connect()
        try:
            ledger = RedisLedger(client, prefix=prefix)
            members = await ledger.members("acme-requests", [_today()])
            state = await ledger.read_total([CounterKey("acme-requests", "acme", _today())])
            return state.settled, state.reserved, len(members)
        finally:
            await client.aclose()

    settled, reserved, members = run(counters())  # type: ignore[misc]
    assert (settled, reserved, members) == (Decimal(LIMIT), Decimal(0), 1)
    from sqlalchemy import create_engine
    from sqlalchemy import text as sql

    engine = create_engine(database)
    with engine.connect() as connection:
        journaled = connection.execute(
            sql("SELECT settled_units FROM usage_counters WHERE policy_id = 'acme-requests'")
        ).scalar_one()
        decisions = connection.execute(sql("SELECT count(*) FROM routing_decisions")).scalar_one()
    engine.dispose()
    assert journaled == LIMIT  # the journal's counter equals the ledger's
    assert decisions == 100


def _today() -> str:
    from datetime import UTC, datetime

    from spendgate.domain.windows import Interval, IntervalKind, window_for

    return window_for(Interval(IntervalKind.DAILY), datetime.now(UTC)).key


def test_an_unreachable_ledger_refuses_with_503_when_closed(tmp_path: Path, prefix: str) -> None:
    with MockUpstreamThread(latency_ms=0) as mock:
        text = config(
            mock.openai_base_url, f"sqlite:///{tmp_path / 'j.db'}", prefix,
            ledger_url="redis://127.0.0.1:1/0",
        )  # fmt: skip
        with serve_process(tmp_path, text, ENV) as gateway:
            response = httpx.post(
                gateway.url + "/v1/chat/completions",
                headers={"authorization": f"Bearer {KEY}"},
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                timeout=30,
            )
            assert response.status_code == 503
            error = response.json()["error"]
            assert error["code"] == "ledger_unavailable"
            assert response.headers["retry-after"] == "1"
            assert "shared ledger unreachable" in gateway.log()
            health = httpx.get(gateway.url + "/healthz").json()
            assert health["status"] == "degraded"
            assert health["ledger"]["available"] is False
            assert health["ledger"]["failure"] == "closed"


def test_serve_with_two_workers_shares_the_budget(tmp_path: Path, prefix: str) -> None:
    with MockUpstreamThread(latency_ms=20) as mock:
        text = config(mock.openai_base_url, f"sqlite:///{tmp_path / 'w.db'}", prefix)
        with serve_process(tmp_path, text, ENV, "--workers", "2") as gateway:
            gateway.wait_for("(worker ", timeout_s=20)

            async def flood() -> list[int]:
                loop = asyncio.get_running_loop()
                calls = (loop.run_in_executor(None, _chat, gateway.url) for _ in range(60))
                return list(await asyncio.gather(*calls))

            statuses = Counter(asyncio.run(flood()))
            log = gateway.log()
    assert statuses == {200: LIMIT, 429: 60 - LIMIT}, statuses
    workers = {line.split("(worker ")[1].split(")")[0] for line in log.splitlines()
               if "(worker " in line}  # fmt: skip
    assert len(workers) == 2, log


def test_a_budget_created_on_one_replica_blocks_on_the_other_within_a_second(
    tmp_path: Path, prefix: str
) -> None:
    with MockUpstreamThread(latency_ms=0) as mock, ExitStack() as stack:
        text = config(mock.openai_base_url, f"sqlite:///{tmp_path / 'r.db'}", prefix)
        replicas = []
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            replicas.append(stack.enter_context(serve_process(folder, text, ENV)))
        a, b = replicas
        assert _chat(b.url) == 200
        admin = {"authorization": f"Bearer {ENV['SPENDGATE_ADMIN_TOKEN']}"}
        created = httpx.post(
            a.url + "/api/v1/budgets",
            headers=admin,
            json={"id": "acme-stop", "scope": {"kind": "project", "id": "acme"},
                  "metric": "requests", "interval": "daily", "hard_limit": 1},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        started = time.monotonic()
        while _chat(b.url) == 200:
            assert time.monotonic() - started < 1.5, "replica b never applied the new budget"
            time.sleep(0.05)
        assert "runtime records changed" in b.log()
        # A key revoked through b stops working on a as quickly.
        made = httpx.post(
            b.url + "/api/v1/keys", headers=admin,
            json={"id": "temp", "principal": "bob", "project": "globex"},
        )  # fmt: skip
        assert made.status_code == 201, made.text
        secret = made.json()["secret"]
        deadline = time.monotonic() + 1.5
        while _models(a.url, secret) != 200:
            assert time.monotonic() < deadline, "replica a never learned the new key"
            time.sleep(0.05)
        assert httpx.delete(b.url + "/api/v1/keys/temp", headers=admin).status_code == 200
        deadline = time.monotonic() + 1.5
        while _models(a.url, secret) == 200:
            assert time.monotonic() < deadline, "replica a still accepts a revoked key"
            time.sleep(0.05)


def _models(url: str, secret: str) -> int:
    return httpx.get(url + "/v1/models", headers={"authorization": f"Bearer {secret}"}).status_code


def test_alerts_run_on_one_replica_and_move_when_it_stops(tmp_path: Path, prefix: str) -> None:
    with MockUpstreamThread(latency_ms=0) as mock:
        text = config(mock.openai_base_url, f"sqlite:///{tmp_path / 'l.db'}", prefix)
        first_folder, second_folder = tmp_path / "a", tmp_path / "b"
        first_folder.mkdir()
        second_folder.mkdir()
        with ExitStack() as first_only:
            first = first_only.enter_context(serve_process(first_folder, text, ENV))
            first.wait_for("lease alerts: taken")
            second = first_only.enter_context(serve_process(second_folder, text, ENV))
            time.sleep(6)  # more than a lease refresh: the second still waits
            assert "lease alerts: taken" not in second.log()
            first.process.terminate()  # a clean stop gives the lease up
            first.process.wait(30)
            second.wait_for("lease alerts: taken", timeout_s=8)


def test_an_unreachable_ledger_admits_unchecked_when_open(tmp_path: Path, prefix: str) -> None:
    with MockUpstreamThread(latency_ms=0) as mock:
        text = config(
            mock.openai_base_url, f"sqlite:///{tmp_path / 'o.db'}", prefix,
            ledger_url="redis://127.0.0.1:1/0",
        ) + "ledger_failure: open\n"  # fmt: skip
        with serve_process(tmp_path, text, ENV) as gateway:
            assert [_chat(gateway.url) for _ in range(3)] == [200, 200, 200]
            assert "admitting requests unchecked" in gateway.log()
            health = httpx.get(gateway.url + "/healthz").json()
            assert health["ledger"]["admitted_unchecked"] == 3
            assert "ledger     shared, Redis redis://127.0.0.1:1/0" in gateway.log()


def test_four_processes_on_postgresql_with_a_thousand_concurrent_requests(
    tmp_path: Path, prefix: str
) -> None:
    """The issue's acceptance run: 4 gateways, one PostgreSQL journal, one Redis ledger,
    1,000 concurrent requests (a quarter of them streamed) against a limit admitting 300."""
    from postgres_support import throwaway_postgres
    from spendgate.store.migrate import migrate

    limit = 300
    with (
        throwaway_postgres() as database,
        MockUpstreamThread(latency_ms=20) as mock,
        ExitStack() as stack,
    ):
        migrate(database)  # as `spendgate db upgrade` does, before the replicas start
        text = config(mock.openai_base_url, database, prefix).replace(
            f"hard_limit: {LIMIT}", f"hard_limit: {limit}"
        )
        gateways = []
        for name in "abcd":
            folder = tmp_path / name
            folder.mkdir()
            gateways.append(stack.enter_context(serve_process(folder, text, ENV)))

        async def flood() -> Counter[int]:
            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=0)
            async with httpx.AsyncClient(timeout=60, limits=limits) as client:

                async def call(index: int) -> int:
                    body = {"model": "gpt-4o-mini", "stream": index % 4 == 0,
                            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
                    # A 503 is a gateway that could not reach its ledger within a second
                    # (on a loaded 2-core machine, 1,000 requests queue for Redis): it refused
                    # without spending, and a client retries it, as the SDKs do.
                    for _ in range(5):
                        response = await client.post(
                            gateways[index % 4].url + "/v1/chat/completions",
                            headers={"authorization": f"Bearer {KEY}"},
                            json=body,
                        )
                        if response.status_code != 503:
                            break
                        await asyncio.sleep(0.5)
                    return response.status_code

                return Counter(await asyncio.gather(*(call(i) for i in range(1000))))

        statuses = asyncio.run(flood())
        assert statuses == {200: limit, 429: 1000 - limit}, statuses
        time.sleep(1.5)  # the background settlements and the journal writers catch up
        from sqlalchemy import create_engine
        from sqlalchemy import text as sql

        engine = create_engine(database)
        with engine.connect() as connection:
            journaled = connection.execute(
                sql("SELECT settled_units FROM usage_counters WHERE policy_id = 'acme-requests'")
            ).scalar_one()
            decisions = connection.execute(
                sql("SELECT count(*) FROM routing_decisions")
            ).scalar_one()
        engine.dispose()

    async def counters() -> CounterState:
        client = await connect()
        try:
            ledger = RedisLedger(client, prefix=prefix)
            return await ledger.read_total([CounterKey("acme-requests", "acme", _today())])
        finally:
            await client.aclose()

    state = run(counters())
    assert state == CounterState.of(Decimal(limit), Decimal(0))  # settled, nothing held
    assert journaled == limit  # the journal's totals equal the ledger's
    assert decisions == 1000


def test_ledger_rebuild_gives_an_emptied_redis_its_history_back(
    tmp_path: Path, prefix: str
) -> None:
    import os
    import subprocess

    from admin_support import SPENDGATE

    with MockUpstreamThread(latency_ms=0) as mock:
        text = config(mock.openai_base_url, f"sqlite:///{tmp_path / 'h.db'}", prefix)
        with serve_process(tmp_path, text, ENV) as gateway:
            assert [_chat(gateway.url) for _ in range(5)] == [200] * 5
    counter = CounterKey("acme-requests", "acme", _today())

    async def settled() -> Decimal:
        client = await connect()
        try:
            return (await RedisLedger(client, prefix=prefix).read_total([counter])).settled
        finally:
            await client.aclose()

    async def lose_everything() -> None:
        client = await connect()
        await drop_prefix(client, prefix)  # as a Redis restarted without persistence
        await client.aclose()

    assert run(settled()) == 5
    run(lose_everything())
    assert run(settled()) == 0
    base = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    done = subprocess.run(
        [SPENDGATE, "ledger", "rebuild", "--config", str(tmp_path / "spendgate.yaml")],
        capture_output=True, text=True, timeout=60, env={**base, **ENV}, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "1 of 1 live counter(s) raised to the journal's" in done.stdout
    assert run(settled()) == 5


def test_a_killed_processs_hold_frees_itself_and_the_others_keep_serving(
    tmp_path: Path, prefix: str
) -> None:
    import threading

    counter = CounterKey("acme-requests", "acme", _today())

    async def reserved() -> Decimal:
        client = await connect()
        try:
            return (await RedisLedger(client, prefix=prefix).read_total([counter])).reserved
        finally:
            await client.aclose()

    database = f"sqlite:///{tmp_path / 'k.db'}"
    with (
        MockUpstreamThread(latency_ms=60_000) as slow,
        MockUpstreamThread(latency_ms=0) as fast,
        ExitStack() as stack,
    ):
        gateways = []
        for name, mock in (("doomed", slow), ("survivor", fast)):
            folder = tmp_path / name
            folder.mkdir()
            text = (
                config(mock.openai_base_url, database, prefix).replace(
                    f"hard_limit: {LIMIT}", "hard_limit: 2"
                )
                + "reservation_ttl: 3s\n"
            )
            gateways.append(stack.enter_context(serve_process(folder, text, ENV)))
        doomed, survivor = gateways
        threading.Thread(target=lambda: _swallow(doomed.url), daemon=True).start()
        deadline = time.monotonic() + 10
        while run(reserved()) != 1:  # the doomed request holds its reservation
            assert time.monotonic() < deadline
            time.sleep(0.05)
        doomed.process.kill()  # kill -9: no shutdown, its hold stays behind
        doomed.process.wait(10)
        assert _chat(survivor.url) == 200  # 1 settled + 1 held of 2
        assert _chat(survivor.url) == 429  # the dead process's hold still counts...
        deadline = time.monotonic() + 8
        while run(reserved()) != 0:  # ...until it expires, a TTL after its last keep-alive
            assert time.monotonic() < deadline, "the dead process's hold never expired"
            time.sleep(0.1)
        assert _chat(survivor.url) == 200


def _swallow(url: str) -> None:
    with contextlib.suppress(httpx.HTTPError):  # its gateway was killed under it
        _chat(url)
