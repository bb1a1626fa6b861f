"""Redis restarted mid-traffic under two gateway processes (issue 13): what the gateways do
while it is down follows ``ledger_failure``, and once it is back — empty, the harsh case: no
persistence — its counters reconcile to the journal's settled totals. Nothing settled is
ever lost, nothing is counted twice, and no budget is passed once checks resume.

Each test runs its own ``redis-server`` (killed with SIGKILL, started again on the same
port) and two ``spendgate serve`` processes on one SQLite journal. Skipped, saying why,
without ``redis-server`` or redis-py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy import text as sql

from conftest import attos
from redis_server_support import PrivateRedis, private_redis
from serve_support import RunningServe, serve_process
from spendgate.domain.budgets import CounterKey, CounterState
from spendgate.domain.windows import Interval, IntervalKind, window_for
from spendgate.ledger.redis import RedisLedger
from spendgate.mock_upstream.runner import MockUpstreamThread

KEY = "sg-outage-acme"
ENV = {"ACME_KEY": KEY, "SPENDGATE_ADMIN_TOKEN": "sg-outage-admin"}
POLICY = "acme-requests"


def config(mock_url: str, database: str, ledger_url: str, limit: int, failure: str) -> str:
    return f"""
providers: [{{id: alpha, kind: openai, base_url: "{mock_url}", api_key_env: ACME_KEY}}]
models: [{{id: gpt-4o-mini, provider: alpha}}]
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false}}
keys: [{{id: acme, key_env: ACME_KEY, principal: alice, project: acme}}]
budgets:
  - {{id: {POLICY}, scope: {{kind: project, id: acme}}, metric: requests,
     interval: daily, hard_limit: {limit}}}
database_url: "{database}"
ledger_url: "{ledger_url}"
ledger_failure: {failure}
"""


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    with private_redis(tmp_path / "redis") as server:
        yield server


@dataclass(frozen=True)
class Answer:
    started: float  # monotonic, before the request was sent
    finished: float
    status: int
    code: str | None  # the error's code
    retry_after: str | None


def _chat(client: httpx.Client, url: str) -> Answer:
    started = time.monotonic()
    response = client.post(
        url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {KEY}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    code = None if response.status_code == 200 else response.json()["error"]["code"]
    return Answer(started, time.monotonic(), response.status_code, code,
                  response.headers.get("retry-after"))  # fmt: skip


class Traffic:
    """A few clients sending requests to the gateways in turn until stopped."""

    def __init__(self, gateways: list[RunningServe], clients: int = 4) -> None:
        self.gateways = gateways
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(clients)
        self._runs = [self._pool.submit(self._client, index) for index in range(clients)]

    def _client(self, index: int) -> None:
        with httpx.Client() as client:
            turn = index
            while not self._stop.is_set():
                answer = _chat(client, self.gateways[turn % len(self.gateways)].url)
                turn += 1
                with self._lock:
                    self.answers.append(answer)
                if answer.status == 503:
                    time.sleep(0.02)  # as a client honouring retry-after would, only quicker

    def since(self, at: float) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.started >= at]

    def wait(self, condition: str, test: object, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not test():  # type: ignore[operator]
            assert time.monotonic() < deadline, f"never: {condition}"
            time.sleep(0.02)

    def stop(self) -> list[Answer]:
        self._stop.set()
        for run in self._runs:
            run.result(timeout=30)
        self._pool.shutdown()
        return list(self.answers)


def _today() -> str:
    return window_for(Interval(IntervalKind.DAILY), datetime.now(UTC)).key


def _ledger(url: str) -> CounterState:
    async def read() -> CounterState:
        from redis.asyncio import Redis

        client = Redis.from_url(url)
        try:
            return await RedisLedger(client).read_total([CounterKey(POLICY, "acme", _today())])
        finally:
            await client.aclose()

    return asyncio.run(read())


def _journal(database: str) -> tuple[int, int]:
    """(the journal's settled counter, its decisions settled ok)."""
    engine = create_engine(database)
    try:
        with engine.connect() as connection:
            counter = connection.execute(
                sql("SELECT settled_units FROM usage_counters WHERE policy_id = :p"),
                {"p": POLICY},
            ).scalar()
            settled = connection.execute(
                sql("SELECT count(*) FROM routing_decisions WHERE status = 'ok'")
            ).scalar_one()
    finally:
        engine.dispose()
    return int(counter or 0), int(settled)


def _health(gateway: RunningServe) -> dict[str, object]:
    ledger: dict[str, object] = httpx.get(gateway.url + "/healthz", timeout=5).json()["ledger"]
    return ledger


def _reconciled(gateways: list[RunningServe], database: str, url: str, admitted: int) -> None:
    """Wait until every gateway has sent what it queued and the journal holds every admitted
    request; then the ledger's counter is the journal's, with nothing held."""
    deadline = time.monotonic() + 10
    while True:
        healths = [_health(gateway) for gateway in gateways]
        idle = all(h["available"] and h["pending_operations"] == 0 for h in healths)
        journaled = _journal(database)
        if idle and journaled == (admitted, admitted):
            break
        assert time.monotonic() < deadline, (healths, journaled, admitted)
        time.sleep(0.05)
    # Settled: what the journal has, every admitted request once; held: nothing.
    deadline = time.monotonic() + 5
    while (state := _ledger(url)) != CounterState.of(Decimal(admitted), Decimal(0)):
        assert time.monotonic() < deadline, f"ledger {state}, journal {admitted} settled"
        time.sleep(0.05)


def _gateways(
    stack: ExitStack, tmp_path: Path, text: str, names: tuple[str, ...] = ("a", "b")
) -> list[RunningServe]:
    running = []
    for name in names:
        folder = tmp_path / name
        folder.mkdir()
        running.append(stack.enter_context(serve_process(folder, text, ENV)))
    return running


def _ok(answers: list[Answer]) -> int:
    return sum(1 for a in answers if a.status == 200)


def test_closed_refuses_during_the_outage_and_reconciles_after_an_empty_restart(
    tmp_path: Path, redis_server: PrivateRedis
) -> None:
    limit = 60
    database = f"sqlite:///{tmp_path / 'journal.db'}"
    with MockUpstreamThread(latency_ms=30) as mock, ExitStack() as stack:
        text = config(mock.openai_base_url, database, redis_server.url, limit, "closed")
        gateways = _gateways(stack, tmp_path, text)
        traffic = Traffic(gateways)
        try:
            traffic.wait("20 admitted", lambda: _ok(traffic.since(0)) >= 20)
            redis_server.kill()
            killed = time.monotonic()
            traffic.wait(
                "refusals from both gateways",
                lambda: sum(a.status == 503 for a in traffic.since(killed)) >= 20,
            )
            time.sleep(0.5)  # an outage that lasts: more than the pool's timeouts
            redis_server.start()  # empty: no persistence
            back = time.monotonic()
            traffic.wait("admitting again", lambda: _ok(traffic.since(back)) >= 1, timeout_s=5)
            traffic.wait(
                "the budget refusing again",
                lambda: sum(a.status == 429 for a in traffic.since(back)) >= 8,
                timeout_s=15,
            )
        finally:
            answers = traffic.stop()
        during = [a for a in answers if killed <= a.started and a.finished < back]
        assert during, "no request during the outage"
        # Nothing admitted unchecked: every request sent while Redis was down was refused
        # with the retryable 503 (an in-flight one may finish; none that started after).
        assert {(a.status, a.code, a.retry_after) for a in during} == {
            (503, "ledger_unavailable", "1")
        }, {(a.status, a.code) for a in during}
        admitted = _ok(answers)
        # The history survived the empty restart: admissions stopped at the limit.
        assert admitted <= limit, admitted
        assert {a.status for a in answers} <= {200, 429, 503}
        _reconciled(gateways, database, redis_server.url, admitted)
        # Operators were told: one critical alert for the outage (requests refused), resolved.
        alerts = _until(
            "the outage's alert resolved",
            lambda: (
                (found := _ledger_alerts(gateways[0]))
                and all(a["state"] == "resolved" for a in found)
                and found
            ),
            show=lambda: (
                [(a["state"], a["occurrences"]) for a in _ledger_alerts(gateways[0])],
                [line for g in gateways for line in g.log().splitlines() if "spendgate.a" in line
                 or "spendgate.ledger" in line],
            ),
        )  # fmt: skip
        assert len(alerts) == 1, alerts  # type: ignore[arg-type]
        assert "requests are refused" in alerts[0]["summary"]  # type: ignore[index]
        assert alerts[0]["severity"] == "critical"  # type: ignore[index]
    assert admitted == limit  # traffic went on until the budget refused: all of it used


def test_open_admits_during_the_outage_and_counts_it_after_an_empty_restart(
    tmp_path: Path, redis_server: PrivateRedis
) -> None:
    limit = 80
    database = f"sqlite:///{tmp_path / 'journal.db'}"
    with MockUpstreamThread(latency_ms=30) as mock, ExitStack() as stack:
        text = config(mock.openai_base_url, database, redis_server.url, limit, "open")
        gateways = _gateways(stack, tmp_path, text)
        traffic = Traffic(gateways)
        try:
            traffic.wait("15 admitted", lambda: _ok(traffic.since(0)) >= 15)
            redis_server.kill()
            killed = time.monotonic()
            # Admitted without a check, and journaled: they must count once Redis is back.
            traffic.wait("admitted unchecked", lambda: _ok(traffic.since(killed)) >= 20)
            redis_server.start()
            back = time.monotonic()
            traffic.wait(
                "the budget refusing again",
                lambda: sum(a.status == 429 for a in traffic.since(back)) >= 8,
                timeout_s=15,
            )
        finally:
            answers = traffic.stop()
        during = [a for a in answers if killed <= a.started and a.finished < back]
        assert during, "no request during the outage"
        assert {a.status for a in during} == {200}, {a.status for a in during}
        unchecked = sum(int(_health(g)["admitted_unchecked"]) for g in gateways)  # type: ignore[call-overload]
        assert unchecked >= len(during)
        admitted = _ok(answers)
        # Enforced again against totals that include what was admitted unchecked: the
        # outage admitted fewer than the limit, so the total stops exactly at it.
        assert admitted <= limit, admitted
        _reconciled(gateways, database, redis_server.url, admitted)
    assert admitted == limit


def test_settlements_queued_while_redis_is_down_reach_it_once(
    tmp_path: Path, redis_server: PrivateRedis
) -> None:
    database = f"sqlite:///{tmp_path / 'journal.db'}"
    with (
        MockUpstreamThread(latency_ms=0) as fast,
        MockUpstreamThread(latency_ms=1500) as slow,
        ExitStack() as stack,
    ):
        quick = config(fast.openai_base_url, database, redis_server.url, 100, "closed")
        (warm,) = _gateways(stack, tmp_path, quick, ("warm",))
        with httpx.Client() as client:  # some history, settled before the outage
            assert [_chat(client, warm.url).status for _ in range(4)] == [200] * 4
        text = config(slow.openai_base_url, database, redis_server.url, 100, "closed")
        gateways = _gateways(stack, tmp_path, text)

        def one(index: int) -> int:
            with httpx.Client() as client:
                return _chat(client, gateways[index % 2].url).status

        with ThreadPoolExecutor(6) as pool:
            calls = [pool.submit(one, index) for index in range(6)]
            deadline = time.monotonic() + 10
            while _ledger(redis_server.url) != CounterState.of(Decimal(4), Decimal(6)):
                assert time.monotonic() < deadline, _ledger(redis_server.url)
                time.sleep(0.02)
            redis_server.kill()  # six requests held, in the upstream: they settle meanwhile
            assert [call.result(timeout=20) for call in calls] == [200] * 6
        # Their settlements wait in the gateways' queues, retried.
        assert sum(int(_health(g)["pending_operations"]) for g in gateways) >= 6  # type: ignore[call-overload]
        redis_server.start()  # empty
        _reconciled([warm, *gateways], database, redis_server.url, 10)


def test_holds_of_requests_running_through_an_empty_restart_are_placed_again(
    tmp_path: Path, redis_server: PrivateRedis
) -> None:
    """Two requests hold 2 of a limit of 3 when Redis restarts empty: their gateway places
    their holds again, so the other gateway admits one more request, not three."""
    database = f"sqlite:///{tmp_path / 'journal.db'}"
    with (
        MockUpstreamThread(latency_ms=0) as fast,
        MockUpstreamThread(latency_ms=4000) as slow,
        ExitStack() as stack,
    ):
        (running,) = _gateways(
            stack, tmp_path, config(slow.openai_base_url, database, redis_server.url, 3, "closed"),
            ("running",),
        )  # fmt: skip
        (other,) = _gateways(
            stack, tmp_path, config(fast.openai_base_url, database, redis_server.url, 3, "closed"),
            ("other",),
        )  # fmt: skip

        def one(_: int) -> int:
            with httpx.Client() as client:
                return _chat(client, running.url).status

        with ThreadPoolExecutor(2) as pool:
            calls = [pool.submit(one, index) for index in range(2)]
            _until("two holds", lambda: _ledger(redis_server.url).reserved == 2)
            redis_server.kill()
            redis_server.start()  # empty: the holds are gone...
            # ...until the running requests' gateway sees the new seed (within its refresh).
            _until("the holds placed again", lambda: _ledger(redis_server.url).reserved == 2)
            with httpx.Client() as client:
                statuses = [_chat(client, other.url).status for _ in range(3)]
            assert statuses == [200, 429, 429]
            assert [call.result(timeout=20) for call in calls] == [200, 200]
        assert "2 hold(s) of running requests placed again" in running.log()
        _reconciled([running, other], database, redis_server.url, 3)


# --- the guard, on the shared test server: what the gateways above rely on ------------------


def test_a_guarded_ledger_writes_nothing_until_seeded_then_counts_each_settlement_once() -> None:
    from redis_support import prefixed
    from spendgate.domain.reservations import ReservationLine
    from spendgate.ledger.base import LedgerUnseededError

    counter = CounterKey(POLICY, "acme", "2027-03-01")
    line = ReservationLine.of(POLICY, (counter,), Decimal(1), Decimal(10))
    now = datetime.now(UTC)
    since = now - timedelta(seconds=60)

    async def scenario() -> None:
        async with prefixed() as (client, prefix):
            ledger = RedisLedger(client, prefix=prefix, guarded=True)
            assert not await ledger.is_seeded()
            with pytest.raises(LedgerUnseededError):
                await ledger.reserve("r1", [line], now)
            with pytest.raises(LedgerUnseededError):
                await ledger.settle("queued", attos({counter: Decimal(1)}), now)
            assert await ledger.read(counter) == CounterState.of()  # nothing landed
            # Another process holding the seeding lock: this one waits its turn.
            await client.set(f"{prefix}:seeding", "someone", px=5_000)
            with pytest.raises(LedgerUnseededError):
                await ledger.reseed({counter: Decimal(5)}, ["recent"], since)
            await client.delete(f"{prefix}:seeding")
            # The journal: 5 settled, "recent" among them (settled within the minute).
            assert await ledger.reseed({counter: Decimal(5)}, ["recent"], since)
            assert not await ledger.reseed({counter: Decimal(99)}, [], since)  # seeded once
            assert await ledger.read(counter) == CounterState.of(Decimal(5), Decimal(0))
            # Queued settlements arriving now: the journal's, counted by the seed already...
            await ledger.settle("recent", attos({counter: Decimal(1)}), now)
            await ledger.settle("older", attos({counter: Decimal(1)}), since - timedelta(seconds=1))
            assert await ledger.read(counter) == CounterState.of(Decimal(5), Decimal(0))
            # ...and one the journal did not have yet: counted, once.
            await ledger.settle("queued", attos({counter: Decimal(1)}), now)
            await ledger.settle("queued", attos({counter: Decimal(1)}), now)
            assert await ledger.read(counter) == CounterState.of(Decimal(6), Decimal(0))
            assert (await ledger.reserve("r1", [line], now)).ok
            assert await ledger.read(counter) == CounterState.of(Decimal(6), Decimal(1))
        # Unguarded (spendgate ledger rebuild, the scripts' own tests): no marker needed.
        async with prefixed() as (client, prefix):
            assert (await RedisLedger(client, prefix=prefix).reserve("r1", [line], now)).ok

    asyncio.run(scenario())


# --- the alert: operators are told while the ledger is away ----------------------------------


def _ledger_alerts(gateway: RunningServe) -> list[dict[str, object]]:
    admin = {"authorization": f"Bearer {ENV['SPENDGATE_ADMIN_TOKEN']}"}
    response = httpx.get(
        gateway.url + "/api/v1/alerts",
        headers=admin,
        params={"kind": "ledger_unavailable"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    alerts: list[dict[str, object]] = response.json()["data"]
    return alerts


def _until(what: str, found: object, timeout_s: float = 10.0, show: object = None) -> object:
    deadline = time.monotonic() + timeout_s
    while not (value := found()):  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never: {what} {show() if show else ''}"  # type: ignore[operator]
        time.sleep(0.05)
    return value


def test_an_open_ledger_admitting_unchecked_raises_an_alert_delivered_during_the_outage(
    tmp_path: Path, redis_server: PrivateRedis
) -> None:
    from webhook_support import webhook_receiver

    database = f"sqlite:///{tmp_path / 'journal.db'}"
    with (
        MockUpstreamThread(latency_ms=0) as mock,
        webhook_receiver() as receiver,
        ExitStack() as stack,
    ):
        text = config(mock.openai_base_url, database, redis_server.url, 100, "open") + (
            f"alerts: {{evaluate_every_seconds: 1, webhooks: [{{id: ops, url: {receiver.url}}}]}}\n"
        )
        gateways = _gateways(stack, tmp_path, text)
        with httpx.Client() as client:
            assert [_chat(client, g.url).status for g in gateways] == [200, 200]
            redis_server.kill()
            # Both replicas admit unchecked: both report the outage, as one alert.
            answers = [_chat(client, gateways[i % 2].url).status for i in range(6)]
        assert answers == [200] * 6
        opened = receiver.wait_for(lambda got: any(r.event == "alert.opened" for r in got))
        alert = next(r for r in opened if r.event == "alert.opened").json["alert"]
        assert alert["kind"] == "ledger_unavailable"
        assert alert["severity"] == "critical"
        assert alert["state"] == "open"
        assert "admitted unchecked" in alert["summary"]
        # Delivered while Redis is still down (the alerts lease lives there: no replica holds
        # it); listed by the admin API of either replica, once.
        assert not redis_server.answers()
        for gateway in gateways:
            listed = _until("the alert listed", lambda g=gateway: _ledger_alerts(g))
            assert [(a["id"], a["state"]) for a in listed] == [(alert["id"], "open")]  # type: ignore[union-attr]
        # Every unchecked admission is counted on it (a replica's count within a pass).
        _until(
            "six unchecked admissions counted",
            lambda: _ledger_alerts(gateways[0])[0]["occurrences"] == 6,
        )
        for gateway in gateways:
            gateway.wait_for("shared ledger unreachable")
        redis_server.start()
        with httpx.Client() as client:
            for gateway in gateways:  # each finds it back (its next request, or its refresh)
                assert _chat(client, gateway.url).status == 200
        resolved = receiver.wait_for(lambda got: any(r.event == "alert.resolved" for r in got))
        assert (
            next(r for r in resolved if r.event == "alert.resolved").json["alert"]["id"]
            == (alert["id"])
        )
        _until(
            "the alert resolved",
            lambda: [a["state"] for a in _ledger_alerts(gateways[1])] == ["resolved"],
            timeout_s=3,
            show=lambda: _ledger_alerts(gateways[1]),
        )
        for gateway in gateways:
            gateway.wait_for("shared ledger reachable again")
        back = [line for line in gateways[0].log().splitlines() if "reachable again" in line]
        lost = [line for line in gateways[0].log().splitlines() if "ledger unreachable" in line]
        assert "WARNING" in lost[0], lost
        assert "INFO" in back[0], back
        # One delivery of each event: the replicas' notifiers claim each before sending.
        events = [r.event for r in receiver.received if r.json["alert"]["id"] == alert["id"]]
        assert sorted(events) == ["alert.opened", "alert.resolved"], events


def test_a_notifier_started_again_after_a_stop_delivers(tmp_path: Path) -> None:
    """The alerts lease is lost while Redis is away and taken again when it is back: the
    notifier stopped then must deliver once started again (it used to stay stopped)."""
    from spendgate.alerting.notifier import WebhookNotifier
    from spendgate.config.alerts import AlertsSpec, WebhookSpec
    from spendgate.store import Journal
    from spendgate.store.outbox import OutboxItem
    from webhook_support import webhook_receiver

    with webhook_receiver() as receiver, Journal(f"sqlite:///{tmp_path / 'j.db'}") as journal:
        spec = AlertsSpec(webhooks=[WebhookSpec(id="ops", url=receiver.url)])

        async def scenario() -> None:
            notifier = WebhookNotifier(journal.outbox, spec, {})
            await notifier.start()
            await notifier.stop()  # the lease lost
            await notifier.start()  # taken again
            try:
                journal.outbox.add([OutboxItem("ops", "alert.opened", "alr_1", b"{}")])
                notifier.wake()
                deadline = time.monotonic() + 10
                while not receiver.events("alert.opened"):
                    assert time.monotonic() < deadline, "never delivered after a restart"
                    await asyncio.sleep(0.05)
            finally:
                await notifier.stop()

        asyncio.run(scenario())
