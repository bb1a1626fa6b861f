"""The in-memory ledger: atomic reserve, settle, release, TTL expiry — and its invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from conftest import attos
from spendgate.domain.budgets import CounterKey, CounterState
from spendgate.domain.reservations import ReservationLine
from spendgate.ledger import MemoryLedger

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
KEY = CounterKey("cap", "acme", "2026-11-25T00:00:00Z")
OTHER = CounterKey("tokens", "acme", "2026-11-25T00:00:00Z")


def line(amount: str, limit: str | None = "10", key: CounterKey = KEY) -> ReservationLine:
    return ReservationLine.of(
        key.policy_id, (key,), Decimal(amount), None if limit is None else Decimal(limit)
    )


def test_reserve_refuses_past_the_limit_and_reports_the_policy() -> None:
    ledger = MemoryLedger()
    assert ledger.reserve("a", [line("6")], NOW).ok
    outcome = ledger.reserve("b", [line("5")], NOW)
    assert not outcome.ok
    assert outcome.refused_policy == "cap"
    assert outcome.consumed == Decimal(6)
    assert ledger.read(KEY).reserved == Decimal(6)


def test_reserve_is_all_or_nothing_across_policies() -> None:
    ledger = MemoryLedger()
    outcome = ledger.reserve("a", [line("1", key=OTHER), line("11")], NOW)
    assert not outcome.ok
    assert ledger.read(OTHER).reserved == 0  # the first line was not applied either


def test_settle_replaces_the_reservation_by_actual_usage() -> None:
    ledger = MemoryLedger()
    ledger.reserve("a", [line("6")], NOW)
    ledger.settle("a", attos({KEY: Decimal("2.5")}))
    state = ledger.read(KEY)
    assert (state.settled, state.reserved) == (Decimal("2.5"), 0)
    assert ledger.open_reservations == 0


def test_expired_reservations_release_their_budget() -> None:
    ledger = MemoryLedger()
    ledger.reserve("a", [line("9")], NOW, ttl=timedelta(seconds=30))
    assert not ledger.reserve("b", [line("9")], NOW).ok
    assert ledger.expire(NOW + timedelta(seconds=31)) == 1
    assert ledger.reserve("b", [line("9")], NOW + timedelta(seconds=31)).ok


def test_extend_keeps_a_running_request_past_its_ttl_and_never_shortens() -> None:
    ledger = MemoryLedger()
    ledger.reserve("a", [line("9")], NOW, ttl=timedelta(seconds=30))
    ledger.reserve("b", [line("1", limit=None)], NOW, ttl=timedelta(hours=1))
    later = NOW + timedelta(seconds=90)
    assert ledger.extend(["a", "b", "gone"], later) == 2
    assert ledger.expire(NOW + timedelta(seconds=60)) == 0  # "a" kept alive
    assert ledger.read(KEY).reserved == Decimal(10)
    assert ledger.expire(later) == 1  # not kept alive any further: "a" expires
    assert ledger.read(KEY).reserved == Decimal(1)  # "b" keeps its longer TTL


def test_settling_an_expired_reservation_still_counts_the_usage() -> None:
    ledger = MemoryLedger()
    ledger.reserve("a", [line("5")], NOW, ttl=timedelta(seconds=1))
    ledger.expire(NOW + timedelta(seconds=2))
    ledger.settle("a", attos({KEY: Decimal(3)}))
    assert ledger.read(KEY).settled == Decimal(3)


def test_rolling_window_limit_sums_every_bucket() -> None:
    older = CounterKey("roll", "acme", "2026-11-25T10:00:00Z")
    newer = CounterKey("roll", "acme", "2026-11-25T11:00:00Z")
    ledger = MemoryLedger({older: Decimal(8)})
    rolling = ReservationLine.of("roll", (older, newer), Decimal(3), Decimal(10))
    assert not ledger.reserve("a", [rolling], NOW).ok
    smaller = ReservationLine.of("roll", (older, newer), Decimal(2), Decimal(10))
    assert ledger.reserve("b", [smaller], NOW).ok
    assert ledger.read(newer).reserved == Decimal(2)  # recorded in the newest bucket


def test_duplicate_reservation_id_is_an_error() -> None:
    ledger = MemoryLedger()
    ledger.reserve("a", [line("1")], NOW)
    with pytest.raises(ValueError, match="already exists"):
        ledger.reserve("a", [line("1")], NOW)


class _NoScan(dict[CounterKey, Decimal]):
    """Counters that fail the test when anything iterates over all of them."""

    def __iter__(self) -> Any:
        raise AssertionError("scanned every counter")

    def keys(self) -> Any:
        raise AssertionError("scanned every counter")

    def items(self) -> Any:
        raise AssertionError("scanned every counter")


def test_members_never_scans_every_counter() -> None:
    today = "2026-11-25T00:00:00Z"
    ledger = MemoryLedger({CounterKey("other", f"m{i}", today): Decimal(1) for i in range(1000)})
    ledger.settle("none", attos({CounterKey("cap", "acme", today): Decimal(1)}))
    ledger.reserve("r", [line("1", key=CounterKey("cap", "initech", today))], NOW)
    ledger._settled = _NoScan(ledger._settled)
    ledger._reserved = _NoScan(ledger._reserved)
    assert ledger.members("cap", [today]) == {"acme", "initech"}


def test_prune_drops_counters_no_policy_reads_and_keeps_holds_in_flight() -> None:
    today, yesterday = "2026-11-25T00:00:00Z", "2026-11-24T00:00:00Z"
    old, current = CounterKey("cap", "acme", yesterday), CounterKey("cap", "acme", today)
    gone = CounterKey("deleted", "acme", today)
    running = CounterKey("cap", "initech", yesterday)
    ledger = MemoryLedger({old: Decimal(1), current: Decimal(2), gone: Decimal(3)})
    ledger.settle("none", attos({running: Decimal(4)}))
    ledger.reserve("r", [line("1", key=running)], NOW - timedelta(days=1))
    assert ledger.prune({"cap": today}) == 3  # old, gone, and running's settled part
    assert ledger.read(old).consumed == ledger.read(gone).consumed == 0
    assert ledger.read(current).settled == Decimal(2)
    assert ledger.read(running) == CounterState.of(Decimal(0), Decimal(1))  # its hold stays
    assert ledger.members("cap", [yesterday, today]) == {"acme", "initech"}
    ledger.settle("r", attos({running: Decimal(1)}))  # a late settlement lands in its window
    assert ledger.prune({"cap": today}) == 1
    assert ledger.members("cap", [yesterday, today]) == {"acme"}
    assert ledger.members("deleted", [today]) == set()


amounts = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(4), places=6)


class LedgerMachine(RuleBasedStateMachine):
    """Any interleaving of reserve / settle (≤ reserved) / release / expire never lets
    settled + reserved exceed the limit, and reserved never goes negative."""

    LIMIT = Decimal(10)

    def __init__(self) -> None:
        super().__init__()
        self.ledger = MemoryLedger()
        self.open: dict[str, Decimal] = {}
        self.counter = 0
        self.clock = NOW

    @rule(amount=amounts)
    def reserve(self, amount: Decimal) -> None:
        self.counter += 1
        rid = f"r{self.counter}"
        before = self.ledger.read(KEY).consumed
        outcome = self.ledger.reserve(
            rid, [ReservationLine.of("cap", (KEY,), amount, self.LIMIT)], self.clock
        )
        assert outcome.ok == (before + amount <= self.LIMIT)
        if outcome.ok:
            self.open[rid] = amount

    @rule(data=st.data(), fraction=st.decimals(min_value=0, max_value=1, places=3))
    def settle(self, data: st.DataObject, fraction: Decimal) -> None:
        if not self.open:
            return
        rid = data.draw(st.sampled_from(sorted(self.open)))
        self.ledger.settle(rid, attos({KEY: self.open.pop(rid) * fraction}))

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        if not self.open:
            return
        rid = data.draw(st.sampled_from(sorted(self.open)))
        self.open.pop(rid)
        self.ledger.release(rid)

    @rule(seconds=st.integers(min_value=0, max_value=900))
    def advance_and_expire(self, seconds: int) -> None:
        self.clock += timedelta(seconds=seconds)
        self.ledger.expire(self.clock)
        self.open = {
            rid: amount for rid, amount in self.open.items() if rid in self.ledger._reservations
        }

    @invariant()
    def members_are_indexed(self) -> None:
        state = self.ledger.read(KEY)
        counted = KEY in self.ledger._settled or state.reserved > 0
        assert self.ledger.members("cap", [KEY.window]) == ({"acme"} if counted else set())

    @invariant()
    def never_over_the_limit(self) -> None:
        state = self.ledger.read(KEY)
        assert state.reserved >= 0
        assert state.reserved == sum(self.open.values(), Decimal(0))
        assert state.settled + state.reserved <= self.LIMIT


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def test_read_total_sums_settled_and_reserved_over_every_bucket() -> None:
    buckets = tuple(CounterKey("roll", "acme", f"2026-11-25T{hour:02}:00:00Z") for hour in range(5))
    ledger = MemoryLedger({buckets[0]: Decimal(1), buckets[3]: Decimal("2.5")})
    ledger.reserve("r", [ReservationLine.of("roll", buckets, Decimal("0.5"))], NOW)
    total = ledger.read_total(buckets)
    assert (total.settled, total.reserved) == (Decimal("3.5"), Decimal("0.5"))
    single = ledger.read_total(buckets[3:4])
    assert (single.settled, single.reserved) == (Decimal("2.5"), 0)


def test_members_lists_settled_and_in_flight_members_of_one_policy_and_window() -> None:
    today, yesterday = "2026-11-25T00:00:00Z", "2026-11-24T00:00:00Z"
    ledger = MemoryLedger(
        {
            CounterKey("cap", "acme", today): Decimal(3),
            CounterKey("cap", "old", yesterday): Decimal(1),
            CounterKey("other", "globex", today): Decimal(2),
        }
    )
    ledger.reserve("r", [line("1", key=CounterKey("cap", "initech", today))], NOW)
    assert ledger.members("cap", [today]) == {"acme", "initech"}
    assert ledger.members("cap", [today, yesterday]) == {"acme", "initech", "old"}
    ledger.release("r")
    assert ledger.members("cap", [today]) == {"acme"}


def test_zero_holds_on_one_counter_release_one_after_the_other() -> None:
    # A free model's request holds 0: two such holds, released in turn, must not fail (the
    # second once crashed the expiry sweep with a KeyError).
    ledger = MemoryLedger()
    assert ledger.reserve("a", [line("0")], NOW).ok
    assert ledger.reserve("b", [line("0")], NOW).ok
    ledger.release("a")
    assert ledger.expire(NOW + timedelta(hours=1)) == 1
    assert ledger.read(KEY) == CounterState.of()
    assert ledger.open_reservations == 0
