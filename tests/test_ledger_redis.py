"""The Redis ledger against a real Redis (skipped, saying why, without one): the same answers
and counters as the in-memory ledger for any sequence of operations, zero overspend across
concurrent callers and processes, idempotent settlement, holds that free themselves once,
seeding once, exact money."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from conftest import attos
from redis_support import REDIS_URL, connect, drop_prefix, prefixed, run
from spendgate.domain.budgets import CounterKey, CounterState
from spendgate.domain.rate_limits import RateLine, RateMetric, RateRefund, bucket_key
from spendgate.domain.reservations import ReservationLine
from spendgate.ledger.base import LedgerUnavailableError, ReserveOutcome
from spendgate.ledger.memory import MemoryLedger
from spendgate.ledger.redis import WHOLE_LIMIT, RedisLedger, decode_amount, encode_amount
from spendgate.store.money import to_atto

if TYPE_CHECKING:
    from redis.asyncio import Redis

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
# Hourly buckets; the tests start at WINDOWS[2], the state machine moves on from there.
WINDOWS = tuple(f"2027-03-01T{hour:02d}" for hour in range(10, 16))
# Each policy has its interval: a calendar window (one bucket) or a rolling one. Ids hold
# separators and non-ASCII characters (the scripts' arguments and keys count bytes).
BUCKETS = {"p0": 1, "p1:é": 3, "p2": 2}
POLICIES = tuple(BUCKETS)
MEMBERS = ("acme", "bé:ta 9:x")
TINY = Decimal("1e-18")
NANO = Decimal("1e-9")

# Up to 18 places, from a single atto-dollar to a million, and the edges of each group of
# nine places (so sums carry and borrow across both).
AMOUNTS = st.decimals(min_value=0, max_value=10**6, places=18, allow_nan=False) | st.sampled_from(
    [Decimal(0), TINY, NANO, NANO - TINY, Decimal(1) - NANO, Decimal(1) - TINY, Decimal(1)]
)
LIMITS = st.none() | st.decimals(min_value=0, max_value=2 * 10**6, places=18, allow_nan=False)


def key(policy: str, member: str = "acme", window: str = WINDOWS[2]) -> CounterKey:
    return CounterKey(policy, member, window)


def line(
    policy: str,
    amount: Decimal,
    limit: Decimal | None,
    buckets: int | None = None,
    member: str = "acme",
    last: int = 2,
) -> ReservationLine:
    """A line over ``buckets`` consecutive windows ending at ``WINDOWS[last]``."""
    return ReservationLine.of(policy, buckets_of(policy, member, last, buckets), amount, limit)


def buckets_of(
    policy: str, member: str, last: int, count: int | None = None
) -> tuple[CounterKey, ...]:
    """The counters a line of ``policy`` reads when its window ends at ``WINDOWS[last]``."""
    count = BUCKETS.get(policy, 1) if count is None else count
    return tuple(key(policy, member, w) for w in WINDOWS[max(0, last - count + 1) : last + 1])


# --- exact money: the representation ---------------------------------------------------------


@settings(max_examples=500)
@given(st.decimals(min_value=0, max_value=WHOLE_LIMIT - 1, places=18, allow_nan=False))
def test_amounts_travel_as_three_exact_integers(amount: Decimal) -> None:
    whole, high, low = encode_amount(amount)
    assert 0 <= whole < WHOLE_LIMIT
    assert 0 <= high < 10**9
    assert 0 <= low < 10**9
    assert decode_amount(whole, high, low) == amount


@given(st.decimals(min_value=0, max_value=10**6, places=24, allow_nan=False))
def test_places_past_the_18th_round_as_the_journal_rounds(amount: Decimal) -> None:
    whole, high, low = encode_amount(amount)
    assert (whole * 10**9 + high) * 10**9 + low == to_atto(amount)


@given(
    st.tuples(st.integers(0, WHOLE_LIMIT - 1), st.integers(0, 10**9 - 1), st.integers(0, 10**9 - 1))
)
def test_every_triple_is_one_amount(parts: tuple[int, int, int]) -> None:
    assert encode_amount(decode_amount(*parts)) == parts


def test_amounts_the_representation_cannot_hold_are_refused() -> None:
    assert encode_amount(Decimal(f"{WHOLE_LIMIT - 1}.999999999999999999")) == (
        WHOLE_LIMIT - 1,
        10**9 - 1,
        10**9 - 1,
    )
    with pytest.raises(ValueError, match=r"too large .* 2\*\*53"):
        encode_amount(Decimal(WHOLE_LIMIT))
    with pytest.raises(ValueError, match="not negative"):
        encode_amount(Decimal("-1e-18"))
    with pytest.raises(ValueError, match="non-finite"):
        encode_amount(Decimal("Infinity"))


# --- exact money: the scripts' arithmetic ----------------------------------------------------

BIG = AMOUNTS | st.decimals(min_value=0, max_value=10**15, places=18, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(settled=st.lists(BIG, min_size=1, max_size=4), ask=BIG, slack=st.integers(-2, 2))
def test_the_scripts_add_and_compare_exactly(
    settled: list[Decimal], ask: Decimal, slack: int
) -> None:
    """Sums with carries across both nine-place groups, and a limit within atto-dollars of
    the sum: admitted exactly when settled + ask <= limit."""
    with localcontext(prec=80):  # the test's own sums exact (the default keeps 28 digits)
        total = sum(settled, Decimal(0))
        limit = max(Decimal(0), total + ask + slack * TINY)
        fits = total + ask <= limit

    async def scenario() -> None:
        async with prefixed() as (client, prefix):
            ledger = RedisLedger(client, prefix=prefix)
            for n, amount in enumerate(settled):
                await ledger.settle(f"s{n}", attos({key("usd", window=WINDOWS[n % 3]): amount}))
            buckets = [key("usd", window=w) for w in WINDOWS[:3]]
            assert (await ledger.read_total(buckets)).settled == total
            outcome = await ledger.reserve("r", [line("usd", ask, limit, buckets=3)], NOW)
            if fits:
                assert outcome == ReserveOutcome(True)
            else:
                assert outcome == ReserveOutcome(False, "usd", total)

    run(scenario())


def test_a_sum_reaching_two_to_the_53_is_refused_before_anything_is_written() -> None:
    async def scenario() -> None:
        async with prefixed() as (client, prefix):
            ledger = RedisLedger(client, prefix=prefix)
            near = Decimal(WHOLE_LIMIT - 1)
            await ledger.settle("first", attos({key("t"): near}))
            assert (await ledger.reserve("held", [line("t", Decimal(1), None)], NOW)).ok
            with pytest.raises(ValueError, match="reached 2\\^53"):
                await ledger.settle("held", attos({key("t"): Decimal(1), key("u"): Decimal(1)}))
            # Nothing of it landed: the hold is still there, the id can still settle.
            assert await ledger.read_many([key("t"), key("u")]) == {
                key("t"): CounterState.of(near, Decimal(1)),
                key("u"): CounterState.of(),
            }
            await ledger.settle("held", attos({key("u"): Decimal(1)}))
            assert await ledger.read_total([key("t"), key("u")]) == CounterState.of(
                near + 1, Decimal(0)
            )

    run(scenario())


def test_many_tiny_amounts_add_up_to_the_exact_sum() -> None:
    amounts = [TINY * (n % 7) + NANO * (n % 3) + Decimal("0.1") for n in range(2000)]

    async def scenario() -> None:
        async with prefixed() as (client, prefix):
            ledger = RedisLedger(client, prefix=prefix)
            await asyncio.gather(
                *(ledger.settle(f"t{n}", attos({key("usd"): a})) for n, a in enumerate(amounts))
            )
            assert (await ledger.read(key("usd"))).settled == sum(amounts, Decimal(0))

    run(scenario())


# --- the same as the in-memory ledger, whatever the sequence ---------------------------------

# Per line: policy, amount, limit, member, and whether it was planned in the window before
# (a request planned just before a boundary, reserving after it).
LINES = st.lists(
    st.tuples(st.sampled_from(POLICIES), AMOUNTS, LIMITS, st.sampled_from(MEMBERS), st.booleans()),
    min_size=0,
    max_size=4,
)
# Rate lines: limit, metric, member, per minute, amount (small: buckets fill and refuse).
RATES = st.lists(
    st.tuples(
        st.sampled_from(("l0", "l1:é")),
        st.sampled_from(tuple(RateMetric)),
        st.sampled_from(MEMBERS),
        st.integers(1, 8),
        st.integers(0, 9),
    ),
    max_size=3,
    unique_by=lambda rate: rate[:3],
)


def rate_line(limit: str, metric: RateMetric, member: str, per: int, amount: int) -> RateLine:
    return RateLine(limit, metric, bucket_key(limit, metric, member), per, amount)


# A fresh id, or one used before (open, settled, released, expired), or one never reserved.
IDS = st.integers(-1, 30)


class SameAsMemory(RuleBasedStateMachine):
    """Random reserve / settle / release / extend / expire / seed on both ledgers, while
    windows move on: the same outcomes, counters, members and open reservations after every
    step. Redis settles are also retried (idempotent); an id settled on Redis cannot be
    reserved again there. Compared: the counters a policy can still read (its window, and the
    one before it for requests planned before the boundary); Redis drops older ones."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.session = prefixed()
        self.client, self.prefix = self.loop.run_until_complete(self.session.__aenter__())
        self.redis = RedisLedger(self.client, prefix=self.prefix, server_clock=False)
        self.memory = MemoryLedger()
        self.now = NOW
        self.current = 2  # the index of the current window in WINDOWS
        self.used: list[str] = []
        self.settled_ids: set[str] = set()
        self.seeds = 0

    def teardown(self) -> None:
        self.loop.run_until_complete(self.session.__aexit__(None, None, None))
        self.loop.close()

    def _run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def _id(self, pick: int) -> str:
        if pick < 0:
            return "never-reserved"
        if pick >= len(self.used):
            self.used.append(f"r{len(self.used)}")
            return self.used[-1]
        return self.used[pick]

    def _live(self, policy: str) -> list[str]:
        first = max(0, self.current - BUCKETS[policy])
        return list(WINDOWS[first : self.current + 1])

    def _live_keys(self) -> list[CounterKey]:
        return [key(p, m, w) for p in POLICIES for m in MEMBERS for w in self._live(p)]

    def _seed_both(self, journal: dict[CounterKey, Decimal]) -> None:
        raised = {
            k: amount - self.memory.read(k).settled
            for k, amount in journal.items()
            if amount > self.memory.read(k).settled
        }
        assert self._run(self.redis.seed(journal)) == len(raised)
        self.seeds += 1
        self.memory.settle(f"seed{self.seeds}", attos(raised))  # an id no reservation uses

    @initialize()
    def seeded(self) -> None:
        self._seed_both({key("p0", window=WINDOWS[1]): Decimal("3.5"), key("p1:é"): Decimal(7)})

    @rule(data=st.data())
    def seed_again(self, data: st.DataObject) -> None:
        """Another process starting (or one reconnecting): counters raised to the journal's."""
        keys = st.sampled_from(self._live_keys())
        self._seed_both(data.draw(st.dictionaries(keys, AMOUNTS, max_size=3)))

    @rule(pick=IDS, lines=LINES, ttl_us=st.integers(1, 5_000_000), rated=RATES)
    def reserve(
        self, pick: int, lines: list[tuple[Any, ...]], ttl_us: int, rated: list[Any]
    ) -> None:
        rid = self._id(pick)
        request = [
            line(p, amount, limit, member=m, last=max(0, self.current - late))
            for p, amount, limit, m, late in lines
        ]
        rates = [rate_line(*rate) for rate in rated]
        ttl = timedelta(microseconds=ttl_us)
        if rid in self.settled_ids:
            with pytest.raises(ValueError, match="already settled"):
                self._run(self.redis.reserve(rid, request, self.now, ttl, rates))
            return
        try:
            expected: ReserveOutcome | str = self.memory.reserve(rid, request, self.now, ttl, rates)
        except ValueError as error:
            expected = str(error)
        try:
            got: ReserveOutcome | str = self._run(
                self.redis.reserve(rid, request, self.now, ttl, rates)
            )
        except ValueError as error:
            got = str(error)
        assert got == expected

    @rule(rated=RATES)
    def refund(self, rated: list[Any]) -> None:
        """Tokens given back (a bucket never goes below empty)."""
        refunds = [rate_line(*rate) for rate in rated]
        given = [RateRefund(r.bucket, r.per_minute, r.amount) for r in refunds]
        self.memory.refund(given, self.now)
        self._run(self.redis.refund(given, self.now))

    @rule(pick=IDS, data=st.data(), retries=st.integers(0, 2))
    def settle(self, pick: int, data: st.DataObject, retries: int) -> None:
        rid = self._id(pick)
        keys = st.sampled_from(self._live_keys())
        actual = attos(data.draw(st.dictionaries(keys, AMOUNTS, max_size=3)))
        if rid not in self.settled_ids:  # settled before: counts nothing on Redis
            self.memory.settle(rid, actual)
            self.settled_ids.add(rid)
        for _ in range(1 + retries):
            self._run(self.redis.settle(rid, actual))

    @rule(picks=st.lists(IDS, min_size=1, max_size=5), data=st.data())
    def settle_together(self, picks: list[int], data: st.DataObject) -> None:
        """Settlements queued up and sent in one script (an id repeated within it, or settled
        before, counts once): as if settled one after another."""
        keys = st.sampled_from(self._live_keys())
        batch = []
        for pick in picks:
            rid = self._id(pick)
            actual = attos(data.draw(st.dictionaries(keys, AMOUNTS, max_size=3)))
            if rid not in self.settled_ids:
                self.memory.settle(rid, actual)
                self.settled_ids.add(rid)
            batch.append((rid, actual))
        self._run(self.redis.settle_many(batch))

    @rule(pick=IDS, retries=st.integers(0, 1))
    def release(self, pick: int, retries: int) -> None:
        rid = self._id(pick)
        self.memory.release(rid)
        for _ in range(1 + retries):
            self._run(self.redis.release(rid))

    @rule(picks=st.lists(IDS, max_size=4), offset_us=st.integers(-1_000_000, 5_000_000))
    def extend(self, picks: list[int], offset_us: int) -> None:
        ids = list(dict.fromkeys(self._id(pick) for pick in picks))
        until = self.now + timedelta(microseconds=offset_us)
        assert self._run(self.redis.extend(ids, until)) == self.memory.extend(ids, until)

    @rule(step_us=st.integers(0, 3_000_000) | st.integers(0, 1_500))
    def time_passes(self, step_us: int) -> None:
        self.now += timedelta(microseconds=step_us)
        assert self._run(self.redis.expire(self.now)) == self.memory.expire(self.now)

    @rule()
    def next_window(self) -> None:
        self.current = min(self.current + 1, len(WINDOWS) - 1)

    @invariant()
    def same_counters(self) -> None:
        live = self._live_keys()
        got = self._run(self.redis.read_many(live))
        assert got == {k: self.memory.read(k) for k in live}
        for policy in POLICIES:
            for member in MEMBERS:
                window = buckets_of(policy, member, self.current)
                got_total = self._run(self.redis.read_total(window))
                assert got_total == self.memory.read_total(window)

    @invariant()
    def sums_match_their_fields(self) -> None:
        """Each member hash's S and R (what a reserve checks first) are its bucket fields'
        sums: never below them, or a limit could be passed."""

        async def hashes() -> list[dict[str, str]]:
            found = []
            async for name in self.client.scan_iter(match=f"{self.prefix}:c:*"):
                fields = await self.client.hgetall(name)
                found.append({_str(k): _str(v) for k, v in fields.items()})
            return found

        for fields in self._run(hashes()):
            for total, kind in (("S", "s|"), ("R", "r|")):
                parts = [_amount(v) for k, v in fields.items() if k.startswith(kind)]
                if total in fields:
                    assert _amount(fields[total]) == sum(parts, Decimal(0))
                else:
                    assert not parts

    @invariant()
    def same_members_and_reservations(self) -> None:
        windows = {policy: self._live(policy) for policy in POLICIES}
        everyone = self._run(self.redis.members_many(windows))
        for policy, live in windows.items():
            expected = self.memory.members(policy, live)
            assert self._run(self.redis.members(policy, live)) == expected
            assert everyone[policy] == expected
        assert self._run(self.redis.open_reservations()) == self.memory.open_reservations


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _amount(stored: str) -> Decimal:
    parts = [int(part) for part in stored.split(":")]
    return Decimal(parts[0]) if len(parts) == 1 else decode_amount(*parts)


SameAsMemory.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_the_redis_ledger_behaves_as_the_memory_ledger = SameAsMemory.TestCase


# --- several OS processes, each with its own client ------------------------------------------


@pytest.fixture(scope="module")
def processes() -> Iterator[ProcessPoolExecutor]:
    run(_probe())  # skips the tests here before starting processes when there is no Redis
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=4, mp_context=context) as pool:
        # Start the four interpreters now, so the tests' deadlines are not spent importing.
        list(pool.map(time.sleep, [0.0] * 4))
        yield pool


async def _probe() -> None:
    client = await connect()
    await client.aclose()


def _at(start: float) -> None:
    """Wait for a moment shared by every process, so they really run at once."""
    time.sleep(max(0.0, start - time.time()))


def _reserve_then_settle_half(prefix: str, worker: int, start: float) -> tuple[int, Decimal]:
    """200 concurrent reservations; half of those admitted settle below their hold, the
    other half release theirs. Returns (admitted, settled)."""

    async def work() -> tuple[int, Decimal]:
        client = await connect()
        try:
            ledger = RedisLedger(client, prefix=prefix)
            lines = [line("shared", Decimal("0.5"), Decimal(25), buckets=3)]
            _at(start)
            ids = [f"w{worker}-{n}" for n in range(200)]
            outcomes = await asyncio.gather(*(ledger.reserve(rid, lines, NOW) for rid in ids))
            admitted = [rid for rid, o in zip(ids, outcomes, strict=True) if o.ok]
            # Every process has reserved before any settles (else freed room admits more).
            await client.incr(f"{prefix}:test-reserved")
            while int(await client.get(f"{prefix}:test-reserved")) < 4:
                await asyncio.sleep(0.005)
            settled = Decimal(0)
            for n, rid in enumerate(admitted):
                if n % 2:
                    await ledger.release(rid)
                else:
                    used = Decimal("0.125") + worker * TINY
                    await ledger.settle(rid, attos({key("shared"): used}))
                    settled += used
            return len(admitted), settled
        finally:
            await client.aclose()

    return asyncio.run(work())


def _seed(prefix: str, history: dict[CounterKey, Decimal], start: float) -> int:
    async def work() -> int:
        client = await connect()
        try:
            _at(start)
            return await RedisLedger(client, prefix=prefix).seed(history)
        finally:
            await client.aclose()

    return asyncio.run(work())


def _expire(prefix: str, now: datetime, start: float) -> int:
    async def work() -> int:
        client = await connect()
        try:
            _at(start)
            return await RedisLedger(client, prefix=prefix).expire(now)
        finally:
            await client.aclose()

    return asyncio.run(work())


def test_four_processes_share_one_limit(processes: ProcessPoolExecutor) -> None:
    """800 reservations of 0.5 from 4 processes against a rolling limit of 25 of which 5 are
    already used in an earlier bucket: exactly 40 fit; afterwards nothing is held and the
    counter is what was settled."""

    async def prepare(prefix: str) -> None:
        async with _shared(prefix) as (_, ledger):
            assert await ledger.seed({key("shared", window=WINDOWS[0]): Decimal(5)}) == 1

    async def check(prefix: str, settled: Decimal) -> None:
        async with _shared(prefix) as (client, ledger):
            assert await ledger.read(key("shared")) == CounterState.of(settled, Decimal(0))
            assert await ledger.open_reservations() == 0
            assert [k async for k in client.scan_iter(match=f"{prefix}:r:*")] == []

    prefix = f"sg-test-{time.time_ns()}"
    try:
        run(prepare(prefix))
        start = time.time() + 0.3
        futures = [processes.submit(_reserve_then_settle_half, prefix, n, start) for n in range(4)]
        results = [future.result(timeout=60) for future in futures]
        assert sum(admitted for admitted, _ in results) == 40
        run(check(prefix, sum((settled for _, settled in results), Decimal(0))))
    finally:
        run(_drop(prefix))


def test_seeding_from_four_processes_at_once_writes_each_counter_once(
    processes: ProcessPoolExecutor,
) -> None:
    history = {
        key("s", member=f"m{n}", window=WINDOWS[n % 3]): Decimal(n) + Decimal("0.1") + TINY
        for n in range(2500)  # more than one script's batch
    }
    prefix = f"sg-test-{time.time_ns()}"

    async def check() -> None:
        async with _shared(prefix) as (_, ledger):
            states = await ledger.read_many(list(history))
            assert {k: s.settled for k, s in states.items()} == history
            members = await ledger.members("s", WINDOWS)
            assert members == {f"m{n}" for n in range(2500)}
            # A later start changes nothing.
            assert await ledger.seed(history) == 0

    try:
        start = time.time() + 0.3
        futures = [processes.submit(_seed, prefix, history, start) for _ in range(4)]
        assert sum(future.result(timeout=60) for future in futures) == len(history)
        run(check())
    finally:
        run(_drop(prefix))


def test_a_crashed_processs_holds_come_back_once_with_concurrent_sweepers(
    processes: ProcessPoolExecutor,
) -> None:
    """A process reserved and died: two processes sweep at once; each hold is freed once."""
    prefix = f"sg-test-{time.time_ns()}"
    later = NOW + timedelta(seconds=2)

    async def crash() -> None:
        async with _shared(prefix) as (_, ledger):
            for n in range(600):  # more than one sweep batch
                lines = [line("hold", Decimal("0.5"), None), line("cap", TINY, Decimal(1))]
                assert (await ledger.reserve(f"c{n}", lines, NOW, timedelta(seconds=1))).ok
            # One that is kept alive stays.
            assert (await ledger.reserve("alive", [line("hold", Decimal(1), None)], NOW)).ok
            assert await ledger.extend(["alive", "gone"], later + timedelta(minutes=1)) == 1

    async def check() -> None:
        async with _shared(prefix) as (_, ledger):
            assert await ledger.read_many([key("hold"), key("cap")]) == {
                key("hold"): CounterState.of(Decimal(0), Decimal(1)),
                key("cap"): CounterState.of(),
            }
            assert await ledger.open_reservations() == 1
            assert await ledger.members("cap", [WINDOWS[2]]) == set()
            # A late settlement of a crashed one still counts what was used, once.
            await ledger.settle("c1", attos({key("hold"): Decimal(2)}))
            await ledger.settle("c1", attos({key("hold"): Decimal(2)}))
            assert (await ledger.read(key("hold"))).settled == Decimal(2)

    try:
        run(crash())
        start = time.time() + 0.3
        futures = [processes.submit(_expire, prefix, later, start) for _ in range(2)]
        assert sum(future.result(timeout=60) for future in futures) == 600
        run(check())
    finally:
        run(_drop(prefix))


async def _drop(prefix: str) -> None:
    async with prefixed(prefix):
        pass


@asynccontextmanager
async def _shared(prefix: str) -> AsyncIterator[tuple[Redis, RedisLedger]]:
    """A client of its own on ``prefix``, whose keys other processes use: left in place."""
    client = await connect()
    try:
        yield client, RedisLedger(client, prefix=prefix)
    finally:
        await client.aclose()


# --- one process, many coroutines ------------------------------------------------------------


def test_concurrent_reservations_never_pass_the_limit() -> None:
    async def scenario() -> None:
        async with prefixed() as (client, prefix):
            ledger = RedisLedger(client, prefix=prefix)
            limit = Decimal("10.000000000000000001")  # exactly ten 1.0 holds fit, not eleven
            lines = [line("cap", Decimal(1), limit), line("other", Decimal(1), None)]
            outcomes = await asyncio.gather(
                *(ledger.reserve(f"c{n}", lines, NOW) for n in range(200))
            )
            assert sum(o.ok for o in outcomes) == 10
            refused = [o for o in outcomes if not o.ok]
            assert {(o.refused_policy, o.consumed) for o in refused} == {("cap", Decimal(10))}
            # All or nothing: the unlimited line was held only for the admitted ones.
            assert await ledger.read(key("other")) == CounterState.of(Decimal(0), Decimal(10))
            admitted = [f"c{n}" for n, o in enumerate(outcomes) if o.ok]
            await asyncio.gather(
                *(ledger.settle(rid, attos({key("cap"): Decimal("0.25")})) for rid in admitted[:5]),
                *(ledger.release(rid) for rid in admitted[5:]),
            )
            assert await ledger.read_many([key("cap"), key("other")]) == {
                key("cap"): CounterState.of(Decimal("1.25"), Decimal(0)),
                key("other"): CounterState.of(),
            }
            assert await ledger.open_reservations() == 0

    run(scenario())


def test_settlement_is_idempotent_and_an_id_is_spent_by_it() -> None:
    async def scenario() -> None:
        async with prefixed() as (client, prefix):
            ledger = RedisLedger(client, prefix=prefix, settled_ttl=timedelta(seconds=60))
            assert (await ledger.reserve("r", [line("p", Decimal(5), Decimal(10))], NOW)).ok
            with pytest.raises(ValueError, match="already exists"):
                await ledger.reserve("r", [line("p", Decimal(1), None)], NOW)
            await asyncio.gather(
                *(ledger.settle("r", attos({key("p"): Decimal(2)})) for _ in range(5))
            )
            assert await ledger.read(key("p")) == CounterState.of(Decimal(2), Decimal(0))
            with pytest.raises(ValueError, match="already settled"):
                await ledger.reserve("r", [line("p", Decimal(1), None)], NOW)
            marker = await client.pttl(f"{prefix}:settled:r")
            assert 0 < marker <= 60_000

    run(scenario())


def test_a_new_window_starts_at_zero_and_counters_expire_by_themselves() -> None:
    async def scenario() -> None:
        async with prefixed() as (client, prefix):
            ledger = RedisLedger(client, prefix=prefix)
            today = key("daily", window="2027-03-01")
            await ledger.settle("a", attos({today: Decimal(9)}))
            tomorrow = key("daily", window="2027-03-02")
            assert await ledger.read(tomorrow) == CounterState.of()
            # Today's 9 refuses 2 more against 10; tomorrow's window admits the whole 10.
            over = await ledger.reserve(
                "b", [ReservationLine.of("daily", (today,), Decimal(2), Decimal(10))], NOW
            )
            assert over == ReserveOutcome(False, "daily", Decimal(9))
            fresh = await ledger.reserve(
                "c", [ReservationLine.of("daily", (tomorrow,), Decimal(10), Decimal(10))], NOW
            )
            assert fresh.ok
            ttl = await client.pttl(ledger.member_key("daily", "acme"))
            assert 61 * 86_400_000 < ttl <= 62 * 86_400_000
            assert await ledger.prune({"daily": "2027-03-02"}) == 0

    run(scenario())


def test_the_ledger_works_with_decoded_responses() -> None:
    redis_asyncio = pytest.importorskip("redis.asyncio", reason="redis-py is not installed")

    async def scenario() -> None:
        async with prefixed() as (_, prefix):
            client = redis_asyncio.Redis.from_url(REDIS_URL, decode_responses=True)
            try:
                ledger = RedisLedger(client, prefix=prefix)
                await ledger.settle("s", attos({key("p"): Decimal("1.5")}))
                outcome = await ledger.reserve("r", [line("p", Decimal(1), Decimal(2))], NOW)
                assert outcome == ReserveOutcome(False, "p", Decimal("1.5"))
                assert await ledger.members("p", [WINDOWS[2]]) == {"acme"}
            finally:
                await client.aclose()

    run(scenario())


def test_an_unreachable_redis_raises_a_clear_error() -> None:
    redis_asyncio = pytest.importorskip("redis.asyncio", reason="redis-py is not installed")

    async def scenario() -> None:
        client = redis_asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
        ledger = RedisLedger(client, prefix="unreachable")
        calls = [
            ledger.reserve("x", [line("p", Decimal(1), Decimal(2))], NOW),
            ledger.settle("x", attos({key("p"): Decimal(1)})),
            ledger.release("x"),
            ledger.extend(["x"], NOW),
            ledger.expire(NOW),
            ledger.read_many([key("p")]),
            ledger.members("p", [WINDOWS[2]]),
            ledger.seed({key("p"): Decimal(1)}),
            ledger.open_reservations(),
        ]
        for call in calls:
            with pytest.raises(LedgerUnavailableError, match="Redis ledger unavailable"):
                await call
        await client.aclose()

    run(scenario())


@pytest.mark.parametrize(
    "error",
    [
        "ReadOnlyError",
        "OutOfMemoryError",
        "BusyLoadingError",
        "MasterDownError",
        "TimeoutError",
    ],
)
def test_servers_that_cannot_write_are_outages_too(error: str) -> None:
    exceptions = pytest.importorskip("redis.exceptions", reason="redis-py is not installed")
    from spendgate.ledger.redis import _raise_translated

    with pytest.raises(LedgerUnavailableError):
        _raise_translated(getattr(exceptions, error)("the server says no"))
    with pytest.raises(LedgerUnavailableError):
        _raise_translated(exceptions.ResponseError("BUSY Redis is busy running a script"))
    _raise_translated(exceptions.ResponseError("WRONGTYPE a bug, not an outage"))  # no raise


def test_seeding_raises_counters_to_the_journal_and_never_lowers_them() -> None:
    async def scenario() -> None:
        async with prefixed() as (client, prefix):
            ledger = RedisLedger(client, prefix=prefix)
            await ledger.settle("ahead", attos({key("a"): Decimal(9)}))  # Redis counted ahead
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

    run(scenario())


def test_a_request_planned_before_a_boundary_still_meets_its_windows_limit() -> None:
    """The first hold in a new window drops the windows left behind, but not the newest: a
    request planned in it just before the boundary (reserving just after) is still refused
    what that window has used up."""
    yesterday, today = key("daily", window="2027-02-28"), key("daily", window="2027-03-01")
    older = key("daily", window="2027-02-27")
    limit = Decimal(10)

    async def scenario() -> None:
        async with prefixed() as (client, prefix):
            ledger = RedisLedger(client, prefix=prefix)
            await ledger.settle("old", attos({older: Decimal(1)}))
            await ledger.settle("used-up", attos({yesterday: limit}))
            fresh = ReservationLine.of("daily", (today,), Decimal(1), limit)
            assert (await ledger.reserve("first-today", [fresh], NOW)).ok
            late = ReservationLine.of("daily", (yesterday,), Decimal(5), limit)
            assert await ledger.reserve("planned-yesterday", [late], NOW) == ReserveOutcome(
                False, "daily", limit
            )
            assert await ledger.read_many([older, yesterday, today]) == {
                older: CounterState.of(),  # dropped: no request reads it any more
                yesterday: CounterState.of(limit, Decimal(0)),
                today: CounterState.of(Decimal(0), Decimal(1)),
            }

    run(scenario())


def test_queued_settlements_go_together_and_one_impossible_sum_drops_only_itself() -> None:
    """SharedLedger sends settlements that queued up in one script; one the ledger cannot
    hold (a sum reaching 2**53) is dropped alone, its neighbours land."""
    from spendgate.ledger.shared import SharedLedger

    async def scenario() -> None:
        async with prefixed() as (client, prefix):
            redis = RedisLedger(client, prefix=prefix)
            await redis.settle("full", attos({key("t"): Decimal(WHOLE_LIMIT - 1)}))
            shared = SharedLedger(redis)
            await shared.start()
            try:
                shared.settle("a", attos({key("u"): Decimal(2)}))
                shared.settle("too-much", attos({key("t"): Decimal(1), key("u"): Decimal(5)}))
                shared.settle("b", attos({key("u"): Decimal(3)}))
                deadline = time.monotonic() + 5
                while shared.pending_operations and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                assert shared.pending_operations == 0
            finally:
                await shared.stop()
            assert await redis.read_many([key("t"), key("u")]) == {
                key("t"): CounterState.of(Decimal(WHOLE_LIMIT - 1)),
                key("u"): CounterState.of(Decimal(5)),
            }

    run(scenario())
