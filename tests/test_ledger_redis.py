"""The Redis ledger against a real Redis (skipped, saying why, without one): the same answers
and counters as the in-memory ledger for any sequence of operations, zero overspend across
concurrent callers and processes, idempotent settlement, holds that free themselves once,
seeding once, exact money."""

from __future__ import annotations

import asyncio
import multiprocessing
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from redis_support import REDIS_URL, connect, drop_prefix, fresh_prefix, run
from spendgate.domain.budgets import CounterKey, CounterState
from spendgate.domain.reservations import ReservationLine
from spendgate.ledger.memory import MemoryLedger
from spendgate.ledger.redis import RedisLedger, decode_amount, encode_amount

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
WINDOWS = ("2027-03-01T10", "2027-03-01T11", "2027-03-01T12")
BUCKETS = {"p0": 1, "p1": 3, "p2": 2}
AMOUNTS = st.decimals(min_value=0, max_value=10_000, places=18, allow_nan=False)


def key(policy: str, member: str = "acme", window: str = WINDOWS[-1]) -> CounterKey:
    return CounterKey(policy, member, window)


def line(policy: str, amount: Decimal, limit: Decimal | None, buckets: int = 1) -> ReservationLine:
    keys = tuple(key(policy, window=w) for w in WINDOWS[-buckets:])
    return ReservationLine(policy, keys, amount, limit)


# --- exact money ----------------------------------------------------------------------------


@settings(max_examples=300)
@given(AMOUNTS)
def test_amounts_travel_as_three_exact_integers(amount: Decimal) -> None:
    parts = encode_amount(amount)
    assert all(0 <= part < 2**53 for part in parts)
    assert decode_amount(*parts) == amount


def test_amounts_beyond_what_doubles_hold_are_refused() -> None:
    with pytest.raises(ValueError, match="too large"):
        encode_amount(Decimal(2**53))
    with pytest.raises(ValueError, match="not negative"):
        encode_amount(Decimal("-1"))


# --- the same as the in-memory ledger, whatever the sequence --------------------------------


class SameAsMemory(RuleBasedStateMachine):
    """Random reserve / settle / release / extend / expire on both ledgers: the same outcomes,
    the same counters after every step."""

    reservations = Bundle("reservations")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.client = self.loop.run_until_complete(connect())
        self.prefix = fresh_prefix()
        self.redis = RedisLedger(self.client, prefix=self.prefix)
        self.memory = MemoryLedger()
        self.now = NOW
        self.ids = iter(range(10**6))
        self.touched: set[CounterKey] = set()

    def teardown(self) -> None:
        self.loop.run_until_complete(drop_prefix(self.client, self.prefix))
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()

    def _run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    @initialize()
    def seeded(self) -> None:
        history = {key("p0"): Decimal("3.5"), key("p1", window=WINDOWS[0]): Decimal(7)}
        assert self._run(self.redis.seed(history)) == 2
        for counter, amount in history.items():
            self.memory.settle("seed", {counter: amount})
        self.touched.update(history)

    @rule(
        target=reservations,
        policies=st.lists(
            st.tuples(
                st.sampled_from(["p0", "p1", "p2"]),
                AMOUNTS,
                st.none() | st.decimals(min_value=0, max_value=20_000, places=6),
            ),
            min_size=1,
            max_size=3,
        ),
        ttl_ms=st.integers(1, 5_000),
    )
    def reserve(self, policies: list[tuple[str, Decimal, Decimal | None]], ttl_ms: int) -> str:
        rid = f"r{next(self.ids)}"
        # Each policy has its interval: a calendar window (one bucket) or a rolling one.
        lines = [line(p, amount, limit, BUCKETS[p]) for p, amount, limit in policies]
        ttl = timedelta(milliseconds=ttl_ms)
        expected = self.memory.reserve(rid, lines, self.now, ttl)
        got = self._run(self.redis.reserve(rid, lines, self.now, ttl))
        assert got == expected
        for reserved in lines:
            self.touched.update(reserved.keys)
        return rid

    @rule(rid=consumes(reservations), amounts=st.lists(AMOUNTS, min_size=0, max_size=2))
    def settle(self, rid: str, amounts: list[Decimal]) -> None:
        actual = {key(f"p{i}"): amount for i, amount in enumerate(amounts)}
        self.memory.settle(rid, actual)
        self._run(self.redis.settle(rid, actual))
        self._run(self.redis.settle(rid, actual))  # a retried settlement counts nothing
        self.touched.update(actual)

    @rule(rid=consumes(reservations))
    def release(self, rid: str) -> None:
        self.memory.release(rid)
        self._run(self.redis.release(rid))
        self._run(self.redis.release(rid))  # twice: a no-op

    @rule(rid=reservations, extra_ms=st.integers(0, 5_000))
    def extend(self, rid: str, extra_ms: int) -> None:
        until = self.now + timedelta(milliseconds=extra_ms)
        ids = [rid, "never-made"]
        assert self._run(self.redis.extend(ids, until)) == self.memory.extend(ids, until)

    @rule(step_ms=st.integers(0, 3_000))
    def time_passes(self, step_ms: int) -> None:
        self.now += timedelta(milliseconds=step_ms)
        assert self._run(self.redis.expire(self.now)) == self.memory.expire(self.now)

    @invariant()
    def same_counters(self) -> None:
        if not self.touched:
            return
        keys = sorted(self.touched)
        got = self._run(self.redis.read_many(keys))
        assert got == {k: self.memory.read(k) for k in keys}


SameAsMemory.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_the_redis_ledger_behaves_as_the_memory_ledger = SameAsMemory.TestCase


# --- zero overspend under concurrency -------------------------------------------------------


def test_concurrent_reservations_never_pass_the_limit() -> None:
    async def scenario() -> None:
        client = await connect()
        prefix = fresh_prefix()
        try:
            ledger = RedisLedger(client, prefix=prefix)
            limit = Decimal("10.000000000000000001")  # exactly ten 1.0 holds fit, not eleven
            lines = [line("cap", Decimal(1), limit)]
            outcomes = await asyncio.gather(
                *(ledger.reserve(f"c{i}", lines, NOW) for i in range(200))
            )
            assert sum(o.ok for o in outcomes) == 10
            refused = [o for o in outcomes if not o.ok]
            assert {o.refused_policy for o in refused} == {"cap"}
            assert {o.consumed for o in refused} == {Decimal(10)}
            # Settle half below their hold, release the rest: nothing stays reserved.
            admitted = [f"c{i}" for i, o in enumerate(outcomes) if o.ok]
            for rid in admitted[:5]:
                await ledger.settle(rid, {key("cap"): Decimal("0.25")})
            for rid in admitted[5:]:
                await ledger.release(rid)
            assert await ledger.read_total([key("cap")]) == CounterState(Decimal("1.25"), 0)
        finally:
            await drop_prefix(client, prefix)
            await client.aclose()

    run(scenario())


def _reserve_from_a_process(prefix: str, worker: int, results: Any) -> None:
    async def reserve_many() -> int:
        client = await connect(REDIS_URL)
        ledger = RedisLedger(client, prefix=prefix)
        lines = [line("shared", Decimal("0.5"), Decimal(20))]
        outcomes = await asyncio.gather(
            *(ledger.reserve(f"w{worker}-{i}", lines, NOW) for i in range(50))
        )
        await client.aclose()
        return sum(o.ok for o in outcomes)

    results.put(asyncio.run(reserve_many()))


def test_four_processes_share_one_limit() -> None:
    async def prepare() -> str:
        client = await connect()
        await client.aclose()
        return fresh_prefix()

    prefix = run(prepare())
    assert isinstance(prefix, str)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=_reserve_from_a_process, args=(prefix, n, results)) for n in range(4)
    ]
    for worker in workers:
        worker.start()
    admitted = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(30)

    async def check() -> None:
        client = await connect()
        try:
            ledger = RedisLedger(client, prefix=prefix)
            state = await ledger.read_total([key("shared")])
            assert state == CounterState(Decimal(0), Decimal(20))
        finally:
            await drop_prefix(client, prefix)
            await client.aclose()

    assert sum(admitted) == 40  # 200 asked for 0.5 each against 20: exactly 40 fit
    run(check())


# --- crashed holders, seeding, windows ------------------------------------------------------


def test_a_crashed_processs_holds_come_back_once() -> None:
    async def scenario() -> None:
        client = await connect()
        prefix = fresh_prefix()
        try:
            ledger = RedisLedger(client, prefix=prefix)
            lines = [line("hold", Decimal(3), Decimal(5))]
            assert (await ledger.reserve("crashed", lines, NOW, timedelta(seconds=1))).ok
            assert not (await ledger.reserve("other", lines, NOW)).ok
            later = NOW + timedelta(seconds=2)
            freed = await asyncio.gather(ledger.expire(later), ledger.expire(later))
            assert sorted(freed) == [0, 1]  # two sweepers, one release
            assert await ledger.read_total([key("hold")]) == CounterState()
            assert (await ledger.reserve("other", lines, later)).ok
            # Its late settlement still counts what was used, once.
            await ledger.settle("crashed", {key("hold"): Decimal(1)})
            assert await ledger.read_total([key("hold")]) == CounterState(Decimal(1), Decimal(3))
        finally:
            await drop_prefix(client, prefix)
            await client.aclose()

    run(scenario())


def test_seeding_from_several_processes_writes_each_counter_once() -> None:
    async def scenario() -> None:
        client = await connect()
        prefix = fresh_prefix()
        try:
            ledgers = [RedisLedger(client, prefix=prefix) for _ in range(4)]
            history = {key("s", member=f"m{i}"): Decimal(i) + Decimal("0.1") for i in range(50)}
            written = await asyncio.gather(*(ledger.seed(history) for ledger in ledgers))
            assert sum(written) == 50
            states = await ledgers[0].read_many(list(history))
            assert {k: s.settled for k, s in states.items()} == history
            assert await ledgers[0].members("s", [WINDOWS[-1]]) == {f"m{i}" for i in range(50)}
        finally:
            await drop_prefix(client, prefix)
            await client.aclose()

    run(scenario())


def test_a_new_window_starts_at_zero_and_money_adds_up_exactly() -> None:
    async def scenario() -> None:
        client = await connect()
        prefix = fresh_prefix()
        try:
            ledger = RedisLedger(client, prefix=prefix)
            tiny = Decimal("0.000000000000000001")
            for i in range(1000):
                await ledger.settle(f"t{i}", {key("usd"): tiny + Decimal("0.1")})
            today = await ledger.read_total([key("usd")])
            assert today.settled == 1000 * (tiny + Decimal("0.1"))
            tomorrow = CounterKey("usd", "acme", "2027-03-02T00")
            assert await ledger.read_total([tomorrow]) == CounterState()
            ttl = await client.pttl(ledger.member_key("usd", "acme"))
            assert 60 * 86_400_000 < ttl <= 62 * 86_400_000
        finally:
            await drop_prefix(client, prefix)
            await client.aclose()

    run(scenario())


def test_an_unreachable_redis_raises_a_clear_error() -> None:
    from redis.asyncio import Redis

    from spendgate.ledger.base import LedgerUnavailableError

    async def scenario() -> None:
        client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
        ledger = RedisLedger(client, prefix=fresh_prefix())
        with pytest.raises(LedgerUnavailableError):
            await ledger.reserve("x", [line("p", Decimal(1), Decimal(2))], NOW)
        with pytest.raises(LedgerUnavailableError):
            await ledger.read_many([key("p")])
        await client.aclose()

    run(scenario())


def test_seeding_raises_counters_to_the_journal_and_never_lowers_them() -> None:
    async def scenario() -> None:
        client = await connect()
        prefix = fresh_prefix()
        try:
            ledger = RedisLedger(client, prefix=prefix)
            await ledger.settle("ahead", {key("a"): Decimal(9)})  # Redis counted ahead
            journal = {key("a"): Decimal(7), key("b"): Decimal("2.5")}
            assert await ledger.seed(journal) == 1  # b raised; a kept at 9
            states = await ledger.read_many([key("a"), key("b")])
            assert {k: s.settled for k, s in states.items()} == {
                key("a"): Decimal(9), key("b"): Decimal("2.5"),
            }  # fmt: skip
            # A Redis that lost everything (restarted empty) gets the history back, once.
            await drop_prefix(client, prefix)
            assert await ledger.seed(journal) == 2
            assert await ledger.seed(journal) == 0
            assert (await ledger.read_total([key("a")])).settled == 7
        finally:
            await drop_prefix(client, prefix)
            await client.aclose()

    run(scenario())
