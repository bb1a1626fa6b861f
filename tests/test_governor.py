"""The Governor library API on the built-in demo config: plan → reserve → settle."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway_support import journal_url_for
from spendgate import (
    BudgetPolicy,
    Governor,
    HardAction,
    Interval,
    IntervalKind,
    Metric,
    ModelNotFoundError,
    RequestError,
    RequestScopes,
    RoutingAction,
    RoutingMode,
    ScopeKind,
    ScopeRef,
    Usage,
    load_config,
)
from spendgate.domain.budgets import CounterKey, counters_for

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
ALICE = RequestScopes(project="acme", principal="alice", api_key="demo-alice")
BODY: dict[str, Any] = {
    "model": "gpt-4o",
    "max_tokens": 400,
    "messages": [{"role": "user", "content": "Write a haiku about budgets."}],
}


@pytest.fixture(scope="module")
def demo() -> Governor:
    return Governor.from_config(load_config(None))


def governed(demo: Governor, *policies: BudgetPolicy, **settings: Any) -> Governor:
    routing = replace(demo.state.settings, **settings)
    return Governor(replace(demo.state, policies=policies, settings=routing))


def cap(limit: str, metric: Metric = Metric.USD) -> BudgetPolicy:
    return BudgetPolicy(
        id="cap",
        scope=ScopeRef(ScopeKind.PROJECT, "acme"),
        metric=metric,
        interval=Interval(IntervalKind.DAILY),
        hard_limit=Decimal(limit),
        hard_action=HardAction.BLOCK,
    )


def test_demo_config_plans_with_catalog_prices(demo: Governor) -> None:
    decision = demo.plan(BODY, ALICE, NOW)
    assert decision.actual_model in demo.state.models
    assert decision.estimate.priced
    assert not decision.estimate.unpriced
    assert {e.policy_id for e in decision.budget_evaluations} == {
        "principal-daily-usd",
        "project-monthly-tokens",
    }


def test_lifecycle_reserve_then_settle_counts_actual_usage(demo: Governor) -> None:
    governor = governed(demo, cap("1"), smart_routing=False)
    decision = governor.plan(BODY, ALICE, NOW)
    assert governor.reserve(decision).ok
    key = CounterKey("cap", "acme", "2026-11-25T00:00:00Z")
    assert governor.ledger.read(key).reserved == decision.estimate.upper_usd
    cost = governor.settle(decision, Usage(input_tokens=20, output_tokens=30))
    # gpt-4o at the catalog's $2.50 / $10 per 1M tokens
    assert cost == Decimal("0.00035")
    state = governor.ledger.read(key)
    assert (state.settled, state.reserved) == (Decimal("0.00035"), 0)


def test_cached_input_is_billed_once_at_the_cached_rate(demo: Governor) -> None:
    decision = demo.plan(BODY, ALICE, NOW)
    full = demo.cost(decision, Usage(input_tokens=1000, output_tokens=0)).upper_usd
    cached = demo.cost(
        decision, Usage(input_tokens=1000, output_tokens=0, cached_input_tokens=1000)
    ).upper_usd
    assert full is not None
    assert cached is not None
    assert cached < full


def test_zero_overspend_under_threaded_concurrency(demo: Governor) -> None:
    governor = governed(demo, cap("0.05"), smart_routing=False)
    admitted: list[Decimal] = []
    lock = threading.Lock()
    barrier = threading.Barrier(50)

    def client() -> None:
        barrier.wait()
        decision = governor.plan(BODY, ALICE, NOW)
        if not decision.blocked and governor.reserve(decision).ok:
            with lock:
                assert decision.estimate.upper_usd is not None
                admitted.append(decision.estimate.upper_usd)

    threads = [threading.Thread(target=client) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    key = CounterKey("cap", "acme", "2026-11-25T00:00:00Z")
    assert 0 < len(admitted) < 50
    assert governor.ledger.read(key).reserved == sum(admitted)
    assert sum(admitted) <= Decimal("0.05")


def test_reservation_refused_when_the_budget_moved_since_planning(demo: Governor) -> None:
    governor = governed(demo, cap("0.006"), smart_routing=False)
    first = governor.plan(BODY, ALICE, NOW)
    second = governor.plan(BODY, ALICE, NOW)  # planned before the first one reserved
    assert governor.reserve(first).ok
    outcome = governor.reserve(second)
    assert not outcome.ok
    assert outcome.refused_policy == "cap"


def test_crashed_request_releases_its_budget_after_the_ttl(demo: Governor) -> None:
    governor = governed(demo, cap("0.006"), smart_routing=False)
    crashed = governor.plan(BODY, ALICE, NOW)
    assert governor.reserve(crashed).ok
    assert not governor.reserve(governor.plan(BODY, ALICE, NOW)).ok
    governor.ledger.expire(NOW + timedelta(minutes=11))
    assert governor.reserve(governor.plan(BODY, ALICE, NOW)).ok


def test_suggest_mode_never_blocks_but_records(demo: Governor) -> None:
    governor = governed(demo, cap("0"), mode=RoutingMode.SUGGEST)
    decision = governor.plan(BODY, ALICE, NOW)
    assert decision.routing_action is RoutingAction.PROCEED
    assert decision.would_action is RoutingAction.BLOCK
    assert governor.reserve(decision).ok


def test_errors(demo: Governor) -> None:
    with pytest.raises(ModelNotFoundError):
        demo.plan({**BODY, "model": "gpt-99"}, ALICE, NOW)
    with pytest.raises(RequestError) as error:
        demo.plan({"model": "gpt-4o", "messages": "hello"}, ALICE, NOW)
    assert error.value.param == "messages"


def test_journal_keeps_budgets_across_restarts(demo: Governor, tmp_path: Path) -> None:
    """Settled usage is journaled; a new process rebuilds its ledger from the counters."""
    from spendgate.store.journal import Journal

    url = journal_url_for(tmp_path / "spendgate.db")
    state = governed(demo, cap("0.006"), smart_routing=False).state
    now = datetime.now(UTC)  # a restart loads the counters of the windows live now
    with Journal(url) as journal:
        first = Governor(state, journal=journal)
        decision = first.plan(BODY, ALICE, now)
        assert first.reserve(decision).ok
        first.settle(decision, Usage(input_tokens=20, output_tokens=400), latency_ms=12.5)
        refused = first.plan(BODY, ALICE, now)
        assert not first.reserve(refused).ok
    with Journal(url) as journal:
        restarted = Governor(state, journal=journal)
        (key,), _ = counters_for(cap("0.006"), "acme", now)
        assert restarted.ledger.read(key).settled == Decimal("0.00405")
        again = restarted.plan(BODY, ALICE, now)
        assert again.routing_action is RoutingAction.BLOCK
        stored = journal.get_decision(decision.id)
        assert stored is not None
        assert stored.decision.actual_cost_usd == Decimal("0.00405")
        assert stored.decision.usage == Usage(input_tokens=20, output_tokens=400)
        blocked = journal.get_decision(refused.id)
        assert blocked is not None
        assert blocked.decision.status == "refused"


def test_start_up_loads_only_the_counters_of_live_windows(demo: Governor, tmp_path: Path) -> None:
    """Counters of ended windows and deleted policies stay in the journal (pruned by
    retention) but are not loaded; those of runtime policies stored in the journal are."""
    from spendgate.store.journal import Journal

    url = journal_url_for(tmp_path / "spendgate.db")
    now = datetime.now(UTC)
    runtime = replace(cap("5"), id="runtime", interval=Interval(IntervalKind.MONTHLY))
    (today,), _ = counters_for(cap("5"), "acme", now)
    (month,), _ = counters_for(runtime, "acme", now)
    ended = {
        CounterKey("cap", "acme", "2020-01-01T00:00:00Z"): Decimal(3),
        CounterKey("runtime", "acme", "2020-01-01T00:00:00Z"): Decimal(4),
        CounterKey("deleted", "acme", today.window): Decimal(5),
    }
    with Journal(url) as journal:
        journal.policies.save(replace(runtime, source="api"))
        journal.add_to_counters({today: Decimal(1), month: Decimal(2), **ended})
    with Journal(url) as journal:
        restarted = Governor(governed(demo, cap("5")).state, journal=journal)
    assert restarted.ledger.read(today).settled == Decimal(1)
    assert restarted.ledger.read(month).settled == Decimal(2)
    assert all(restarted.ledger.read(key).settled == 0 for key in ended)
