"""The journal: enqueue-only writes, group commit, durability, read side, rollups."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from spendgate.domain.amounts import to_atto
from spendgate.domain.budgets import (
    BudgetEvaluation,
    BudgetPolicy,
    BudgetStatus,
    CounterKey,
    CounterState,
    HardAction,
    Metric,
    counters_for,
)
from spendgate.domain.complexity import ComplexityScore, ComplexityTerm
from spendgate.domain.models import Tier
from spendgate.domain.pricing import Precision, PriceSource, PricingEstimate, Usage
from spendgate.domain.routing import (
    Candidate,
    HealthState,
    RoutingAction,
    RoutingDecision,
    RoutingMode,
    TaskClass,
    routing_difference,
)
from spendgate.domain.scopes import RequestScopes, ScopeKind, ScopeRef
from spendgate.domain.windows import Interval, IntervalKind
from spendgate.store import (
    DecisionFilter,
    Journal,
    JournalClosedError,
    JournalError,
    UsageTotals,
    WriterSettings,
    schema,
)

NOW = datetime(2026, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)
DAILY = BudgetPolicy(
    id="acme-daily",
    scope=ScopeRef(ScopeKind.PROJECT, "acme"),
    metric=Metric.USD,
    interval=Interval(IntervalKind.DAILY),
    hard_limit=Decimal("10"),
    soft_limit=Decimal("5"),
)
WEEKLY_TOKENS = BudgetPolicy(
    id="per-principal-tokens",
    scope=ScopeRef(ScopeKind.PRINCIPAL, "*"),
    metric=Metric.TOKENS,
    interval=Interval(IntervalKind.ROLLING, duration=timedelta(days=7)),
    hard_limit=Decimal(2_000_000),
    hard_action=HardAction.REQUIRE_APPROVAL,
)


def estimate(model: str = "mini", upper: str | None = "0.0098355") -> PricingEstimate:
    return PricingEstimate(
        model=model,
        input_tokens_lower=8,
        input_tokens_upper=34,
        output_tokens_upper=16_384,
        lower_usd=None if upper is None else Decimal("0.0000012"),
        upper_usd=None if upper is None else Decimal(upper),
        precision=Precision.EXACT if upper is not None else Precision.ESTIMATE,
        source=PriceSource.CATALOG if upper is not None else None,
        unpriced=upper is None,
    )


def make_decision(
    number: int = 0,
    *,
    created_at: datetime = NOW,
    project: str | None = "acme",
    principal: str | None = "alice",
    requested: str = "standard",
    actual: str = "mini",
    provider: str = "alpha",
    action: RoutingAction = RoutingAction.DEGRADE,
    mode: RoutingMode = RoutingMode.ENFORCED,
    would: RoutingAction | None = None,
    saving: Decimal | None = Decimal("0.1540895"),
    policies: tuple[BudgetPolicy, ...] = (DAILY, WEEKLY_TOKENS),
    usage: Usage | None = None,
    cost: Decimal | None = None,
    reason_codes: tuple[str, ...] = ("simple_prompt", "degrade_budget"),
) -> RoutingDecision:
    """A decision as the planner would make one, with every optional part filled in."""
    scopes = RequestScopes(
        project=project, principal=principal, api_key="k1", agent="bot", session="s-1"
    )
    evaluations = []
    for policy in policies:
        member = scopes.matched_member(policy.scope) or "?"
        keys, window = counters_for(policy, member, created_at)
        evaluations.append(
            BudgetEvaluation(
                policy=policy,
                member=member,
                window=window,
                settled_atto=to_atto(Decimal("4.25")) if policy.metric is Metric.USD else 0,
                reserved_atto=to_atto(Decimal("0.5")),
                request_amount=Decimal("0.0098355"),
                status=BudgetStatus.THRESHOLD if policy is DAILY else BudgetStatus.OK,
                threshold=Decimal("0.5") if policy is DAILY else None,
                keys=keys,
                amount_atto=to_atto(Decimal("0.0098355")),
            )
        )
    return RoutingDecision(
        id=f"dec-{number:06d}",
        created_at=created_at,
        mode=mode,
        scopes=scopes,
        task_class=TaskClass.PRIMARY_INTERACTIVE,
        requested_model=requested,
        default_model="standard",
        recommended_model=actual,
        target_model=actual,
        target_provider=provider,
        complexity=ComplexityScore(
            0.1 + (number % 7) / 10,
            (
                ComplexityTerm("length", 0.017230060940112778, "38 characters"),
                ComplexityTerm("reasoning_cues", 0.0, "0 cue(s)"),
            ),
        ),
        health=HealthState.HEALTHY,
        routing_action=action,
        reason_codes=reason_codes,
        explanation=("Mode enforced from config.", "A simple prompt goes to the cheaper mini."),
        estimate=estimate(actual),
        budget_evaluations=tuple(evaluations),
        candidates=(
            Candidate("mini", "alpha", Tier.LOW, Tier.LOW, HealthState.HEALTHY, estimate(), True,
                      "eligible"),
            Candidate("premium", "beta", Tier.HIGH, Tier.HIGH, HealthState.DEGRADED,
                      estimate("premium", "2.40051"), False, "unhealthy provider"),
            Candidate("shadow", "gamma", Tier.MEDIUM, Tier.MEDIUM, HealthState.HEALTHY,
                      estimate("shadow", None), True, "unpriced"),
        ),
        would_action=would,
        estimated_saving_usd=saving,
        usage=usage,
        actual_cost_usd=cost,
        latency_ms=None if usage is None else 812.5,
        status=None if usage is None else "ok",
    )  # fmt: skip


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'journal.db'}"


@pytest.fixture(params=["thread", "process"])
def journal(request: pytest.FixtureRequest, url: str) -> Iterator[Journal]:
    settings = WriterSettings(max_batch_wait_ms=5, process=request.param == "process")
    with Journal(url, settings=settings) as opened:
        yield opened


def count(journal: Journal, table: Any) -> int:
    with journal.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


# --- writes never wait; nothing is lost ----------------------------------------------------


def test_sqlite_runs_in_wal_mode(journal: Journal, url: str) -> None:
    with journal.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_10000_decisions_from_4_threads_all_committed_and_counters_exact(url: str) -> None:
    per_thread, threads = 2_500, 4
    expected: dict[CounterKey, Decimal] = {}
    expected_lock = threading.Lock()
    enqueue_seconds: list[float] = []

    def produce(worker: int, journal: Journal) -> None:
        rng = random.Random(worker)
        mine: dict[CounterKey, Decimal] = {}
        started = time.perf_counter()
        for n in range(per_thread):
            number = worker * per_thread + n
            decision = make_decision(number, created_at=NOW + timedelta(seconds=number))
            journal.append_decision(decision)
            cost = Decimal(rng.randint(1, 10**9)).scaleb(-rng.randint(0, 10))
            journal.settle_decision(decision.id, Usage(120, 30, 8), cost, 40.0, "ok")
            key = CounterKey("acme-daily", "acme", f"2026-03-1{n % 3}T00:00:00Z")
            journal.add_to_counters({key: cost})
            mine[key] = mine.get(key, Decimal(0)) + cost
        enqueue_seconds.append(time.perf_counter() - started)
        with expected_lock:
            for key, amount in mine.items():
                expected[key] = expected.get(key, Decimal(0)) + amount

    journal = Journal(url, settings=WriterSettings(max_batch_items=256, max_batch_wait_ms=20))
    workers = [threading.Thread(target=produce, args=(w, journal)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    # Enqueueing 3 items per decision never waited for the database: 30,000 puts take far
    # less than committing them does (generous bound for slow CI machines).
    assert max(enqueue_seconds) < 10
    journal.close()
    stats = journal.stats()
    assert stats.pending == 0
    assert stats.committed_items == 3 * per_thread * threads
    assert stats.rejected_items == stats.skipped_items == stats.lost_items == 0

    with Journal(url) as reopened:
        assert count(reopened, schema.routing_decisions) == per_thread * threads
        unsettled = DecisionFilter(settled=False)
        assert reopened.list_decisions(limit=10, filters=unsettled) == []
        counters = reopened.load_counters()
        assert {key: state.settled for key, state in counters.items()} == expected
        assert all(state.reserved == 0 for state in counters.values())
        (totals,) = reopened.usage_totals()
        assert totals.requests == totals.settled == per_thread * threads
        assert totals.cost_usd == sum(expected.values(), Decimal(0))


def test_enqueue_returns_without_touching_the_database(url: str) -> None:
    journal = Journal(url)
    # Hold the write lock from outside: the writer is stuck, yet enqueueing stays instant.
    blocker = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        started = time.perf_counter()
        for n in range(1_000):
            journal.append_decision(make_decision(n))
        elapsed = time.perf_counter() - started
        assert elapsed < 0.5
        assert journal.flush(timeout=0.05) is False  # not committed while the lock is held
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert journal.flush(timeout=10)
    assert count(journal, schema.routing_decisions) == 1_000
    journal.close()


def test_close_commits_everything_enqueued(url: str) -> None:
    # A long batch window: close() must not wait it out, nor drop what is in it.
    journal = Journal(url, settings=WriterSettings(max_batch_wait_ms=60_000))
    for n in range(50):
        journal.append_decision(make_decision(n))
    started = time.perf_counter()
    journal.close()
    assert time.perf_counter() - started < 5
    with Journal(url) as reopened:
        assert count(reopened, schema.routing_decisions) == 50


def test_enqueue_after_close_is_refused(journal: Journal) -> None:
    journal.close()
    with pytest.raises(JournalClosedError):
        journal.append_decision(make_decision())


def test_reopen_rebuilds_counters(url: str) -> None:
    day1 = CounterKey("acme-daily", "acme", "2026-03-13T00:00:00Z")
    day2 = CounterKey("acme-daily", "acme", "2026-03-14T00:00:00Z")
    tokens = CounterKey("per-principal-tokens", "alice", "2026-03-14T08:00:00Z")
    with Journal(url) as journal:
        journal.add_to_counters({day1: Decimal("1.5"), tokens: Decimal(1200)})
        journal.add_to_counters({day2: Decimal("0.000000001"), tokens: Decimal(300)})
        journal.add_to_counters({day2: Decimal("2.999999999")})
    with Journal(url) as journal:
        assert journal.load_counters() == {
            day1: CounterState.of(settled=Decimal("1.5")),
            day2: CounterState.of(settled=Decimal(3)),
            tokens: CounterState.of(settled=Decimal(1500)),
        }
        live = {
            "acme-daily": "2026-03-14T00:00:00Z",
            "per-principal-tokens": "2026-03-14T08:00:00Z",
        }
        assert set(journal.load_counters(live)) == {day2, tokens}
        assert set(journal.load_counters({"acme-daily": "2026-03-13T00:00:00Z"})) == {day1, day2}
        assert journal.load_counters({}) == {}


# --- failures: retried, isolated, never silently dropped ------------------------------------


def test_failed_batch_is_retried_and_committed(url: str) -> None:
    # The failures are injected through this process's engine: the writer runs on a thread
    # here (the retry code is the same one the writer process runs).
    settings = WriterSettings(max_batch_wait_ms=5, retry_initial_ms=10, process=False)
    journal = Journal(url, settings=settings)
    failures = {"left": 2}

    def fail_inserts(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO routing_decisions") and failures["left"]:
            failures["left"] -= 1
            raise OperationalError(statement, None, sqlite3.OperationalError("disk I/O error"))

    event.listen(journal.engine, "before_cursor_execute", fail_inserts)
    decision = make_decision()
    journal.append_decision(decision)
    journal.add_to_counters({CounterKey("acme-daily", "acme", "k"): Decimal("0.25")})
    assert journal.flush(timeout=10)
    assert failures["left"] == 0
    stats = journal.stats()
    assert stats.failed_attempts == 2
    assert stats.committed_items == 2
    assert "disk I/O error" in (stats.last_error or "")
    stored = journal.get_decision(decision.id)
    assert stored is not None
    # The failed attempts were rolled back whole: the counter was added exactly once.
    assert journal.load_counters()[CounterKey("acme-daily", "acme", "k")].settled == Decimal("0.25")
    journal.close()


def test_locked_database_is_waited_out_with_retries(url: str) -> None:
    journal = Journal(url, busy_timeout_ms=20, settings=WriterSettings(retry_initial_ms=10))
    blocker = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    journal.append_decision(make_decision())
    # The writer (a process that starts on this first write) fails while the lock is held.
    deadline = time.monotonic() + 10
    while journal.stats().failed_attempts == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    blocker.execute("ROLLBACK")
    blocker.close()
    assert journal.flush(timeout=10)
    stats = journal.stats()
    assert stats.failed_attempts >= 1
    assert "locked" in (stats.last_error or "")
    assert count(journal, schema.routing_decisions) == 1
    journal.close()


def test_a_bad_item_is_isolated_and_the_rest_committed(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    journal.append_decision(make_decision(1))
    assert journal.flush(timeout=10)
    journal.append_decision(make_decision(2))
    journal.append_decision(make_decision(1))  # duplicate id: a constraint violation
    journal.add_to_counters({CounterKey("acme-daily", "acme", "k"): Decimal(1)})
    assert journal.flush(timeout=10)
    stats = journal.stats()
    assert stats.rejected_items == 1
    assert count(journal, schema.routing_decisions) == 2
    assert journal.load_counters()[CounterKey("acme-daily", "acme", "k")].settled == 1
    assert "journal item rejected: append decision dec-000001" in caplog.text


def test_a_full_queue_drops_decision_records_but_never_counter_increments(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A stalled database (another process holds the write lock): the queue stops growing at
    ``max_pending``; further decision records are dropped (counted, logged at ERROR once per
    interval) while counter increments are merged and committed once the database is back."""
    settings = WriterSettings(max_pending=5, retry_initial_ms=10, retry_max_ms=20)
    journal = Journal(url, busy_timeout_ms=10, settings=settings)
    key = CounterKey("acme-daily", "acme", "2026-03-14T00:00:00Z")
    blocker = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    journal.append_decision(make_decision(0))
    # The writer holds that one in a failing batch; every record below must wait in the queue.
    deadline = time.monotonic() + 10
    while journal.stats().failed_attempts == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    started = time.perf_counter()
    for number in range(1, 21):
        journal.append_decision(make_decision(number))
        journal.add_to_counters({key: Decimal(1)})
    assert time.perf_counter() - started < 1  # never waited for the database
    stats = journal.stats()
    assert stats.pending == 1 + 5  # the batch in flight and a full queue: no more
    assert stats.max_pending == 5
    # Queued: decisions 1-3 and increments 1-2; dropped: decisions 4-20; the increments
    # 3-20 are held (merged by counter), not dropped.
    assert stats.dropped_items == 17
    assert stats.held_counters == 1
    assert stats.degraded
    errors = [r for r in caplog.records if r.levelname == "ERROR" and "queue is full" in r.message]
    assert len(errors) == 1  # rate-limited: one line for the burst
    assert "dropped 1 journal record" in errors[0].message
    blocker.execute("ROLLBACK")
    blocker.close()
    assert journal.flush(timeout=10)
    assert count(journal, schema.routing_decisions) == 4  # decisions 0-3
    assert journal.load_counters()[key].settled == 20  # every increment counted
    after = journal.stats()
    assert (after.pending, after.held_counters, after.dropped_items) == (0, 0, 17)
    journal.close()


def test_close_reports_items_it_could_not_commit(url: str) -> None:
    journal = Journal(url, busy_timeout_ms=10, settings=WriterSettings(retry_initial_ms=10))
    blocker = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        journal.append_decision(make_decision())
        with pytest.raises(JournalError, match="1 journal item"):
            journal.close(timeout=0.3)
        assert journal.stats().lost_items == 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


# --- read side -----------------------------------------------------------------------------


def test_decision_round_trips_exactly(journal: Journal) -> None:
    pending = make_decision(7, would=RoutingAction.BLOCK, mode=RoutingMode.DRY_RUN)
    settled = make_decision(8, usage=Usage(812, 120, 512), cost=Decimal("0.0001953000000001"))
    journal.append_decision(pending)
    journal.append_decision(settled, usage_estimated=True)
    assert journal.flush(timeout=10)

    stored = journal.get_decision(pending.id)
    assert stored is not None
    assert stored.decision == pending
    assert stored.settled_at is None
    assert stored.usage_estimated is None

    stored = journal.get_decision(settled.id)
    assert stored is not None
    assert stored.decision == settled
    assert stored.decision.actual_cost_usd == Decimal("0.0001953000000001")
    assert stored.usage_estimated is True
    assert stored.settled_at is not None
    assert journal.get_decision("nope") is None


def test_planner_decisions_round_trip(journal: Journal) -> None:
    from conftest import chat, policy, run_plan, state

    governance = state(
        [
            policy("acme-daily", hard="0.001", soft="0.0005", hard_action=HardAction.BLOCK),
            policy("alice-rolling", kind=ScopeKind.PRINCIPAL, member="*", metric=Metric.TOKENS,
                   interval=Interval(IntervalKind.ROLLING, duration=timedelta(hours=5)),
                   hard="1000000"),
        ]
    )  # fmt: skip
    decisions = [
        run_plan(governance, chat("Summarise this.")),
        run_plan(governance, chat("```python\nprint(1)\n```\nWhy does this fail? " * 40)),
        run_plan(governance, chat("hi", model="premium"), requested_mode=RoutingMode.SUGGEST),
    ]
    for n, decision in enumerate(decisions):
        journal.append_decision(replace(decision, id=f"plan-{n}"))
    assert journal.flush(timeout=10)
    for n, decision in enumerate(decisions):
        stored = journal.get_decision(f"plan-{n}")
        assert stored is not None
        assert stored.decision == replace(decision, id=f"plan-{n}")
        assert [e.message for e in stored.decision.budget_evaluations] == [
            e.message for e in decision.budget_evaluations
        ]


def test_policies_are_stored_once_per_version_not_per_row(journal: Journal) -> None:
    for n in range(20):
        journal.append_decision(make_decision(n))
    stricter = replace(DAILY, hard_limit=Decimal(8))
    journal.append_decision(make_decision(99, policies=(stricter,)))
    assert journal.flush(timeout=10)
    assert count(journal, schema.policy_snapshots) == 3
    old = journal.get_decision("dec-000001")
    new = journal.get_decision("dec-000099")
    assert old is not None
    assert new is not None
    # Each decision explains itself with the policy as it was when it was made.
    assert old.decision.budget_evaluations[0].hard_limit == 10
    assert new.decision.budget_evaluations[0].hard_limit == 8


def test_settlement_fills_usage_once(journal: Journal, caplog: pytest.LogCaptureFixture) -> None:
    decision = make_decision()
    journal.append_decision(decision)
    assert journal.flush(timeout=10)
    journal.settle_decision(decision.id, Usage(100, 20, 0), Decimal("0.00045"), 99.5, "ok")
    journal.settle_decision(decision.id, Usage(999, 999), Decimal(9), 1.0, "ok")
    journal.settle_decision("unknown", Usage(1, 1), Decimal(1), 1.0, "ok")
    assert journal.flush(timeout=10)
    stored = journal.get_decision(decision.id)
    assert stored is not None
    assert stored.decision.usage == Usage(100, 20, 0)
    assert stored.decision.actual_cost_usd == Decimal("0.00045")
    assert stored.decision.status == "ok"
    assert journal.stats().skipped_items == 2
    assert "already settled" in caplog.text
    assert "no such decision" in caplog.text
    (totals,) = journal.usage_totals()
    assert (totals.settled, totals.input_tokens, totals.cost_usd) == (1, 100, Decimal("0.00045"))


def test_unpriced_settlement_is_not_zero(journal: Journal) -> None:
    decision = make_decision(actual="shadow")
    journal.append_decision(decision)
    journal.settle_decision(decision.id, Usage(10, 10), None, 5.0, "ok")
    assert journal.flush(timeout=10)
    stored = journal.get_decision(decision.id)
    assert stored is not None
    assert stored.decision.actual_cost_usd is None
    (totals,) = journal.usage_totals()
    assert totals.unpriced == 1
    assert totals.cost_usd == 0


def test_list_decisions_filters_and_pages(journal: Journal) -> None:
    for n in range(30):
        journal.append_decision(
            make_decision(
                n,
                created_at=NOW + timedelta(minutes=n),
                project="acme" if n % 2 else "globex",
                reason_codes=("budget_soft_limit",) if n % 5 == 0 else ("simple_prompt",),
            )
        )
    journal.append_decision(make_decision(100, reason_codes=("budgetxsoft_limit",)))
    assert journal.flush(timeout=10)

    newest = journal.list_decisions(limit=3)
    assert [s.decision.id for s in newest] == ["dec-000029", "dec-000028", "dec-000027"]
    page = journal.list_decisions(limit=3, offset=3)
    assert [s.decision.id for s in page] == ["dec-000026", "dec-000025", "dec-000024"]

    acme = journal.list_decisions(limit=100, filters=DecisionFilter(project="acme"))
    assert len(acme) == 15 + 1
    soft = journal.list_decisions(filters=DecisionFilter(reason_code="budget_soft_limit"))
    # '_' is matched literally: "budgetxsoft_limit" is not a hit.
    assert sorted(s.decision.id for s in soft) == [f"dec-{n:06d}" for n in (0, 5, 10, 15, 20, 25)]
    window = DecisionFilter(since=NOW + timedelta(minutes=10), until=NOW + timedelta(minutes=12))
    assert [s.decision.id for s in journal.list_decisions(filters=window)] == [
        "dec-000011",
        "dec-000010",
    ]
    none = DecisionFilter(project="acme", routing_action=RoutingAction.BLOCK)
    assert journal.list_decisions(filters=none) == []


# --- rollups -------------------------------------------------------------------------------


def test_rollups_match_the_raw_rows(journal: Journal) -> None:
    rng = random.Random(7)
    decisions = []
    for n in range(400):
        action = rng.choice(list(RoutingAction))
        decision = make_decision(
            n,
            created_at=NOW + timedelta(minutes=rng.randint(0, 60 * 30)),
            project=rng.choice(["acme", "globex", None]),
            principal=rng.choice(["alice", "bob"]),
            actual=rng.choice(["mini", "standard"]),
            requested="standard",
            action=action,
            would=rng.choice([None, RoutingAction.BLOCK, RoutingAction.DEGRADE]),
            saving=rng.choice([None, Decimal("0.0123456789")]),
        )
        decisions.append(decision)
        journal.append_decision(decision)
        if not decision.blocked and rng.random() < 0.8:
            cost = rng.choice([None, Decimal(rng.randint(0, 10**8)).scaleb(-9)])
            requested_cost = (
                None
                if decision.target_model == decision.requested_model
                else rng.choice([None, Decimal(rng.randint(0, 10**8)).scaleb(-9)])
            )
            journal.settle_decision(
                decision.id,
                Usage(rng.randint(1, 5000), rng.randint(0, 900), 3),
                cost,
                20.0,
                "ok",
                requested_cost_usd=requested_cost,
            )
    assert journal.flush(timeout=10)

    totals = journal.usage_totals(group_by=("hour", "project", "principal", "model", "provider"))
    raw = journal.list_decisions(limit=10_000)
    assert len(raw) == 400
    expected: dict[tuple[Any, ...], Counter[str]] = {}
    costs: dict[tuple[Any, ...], Decimal] = {}
    savings: dict[tuple[Any, ...], Decimal] = {}
    extras: dict[tuple[Any, ...], Decimal] = {}
    for stored in raw:
        d = stored.decision
        key = (
            d.created_at.replace(minute=0, second=0, microsecond=0),
            d.scopes.project or "",
            d.scopes.principal or "",
            d.actual_model or "",  # refused: no model called
            d.provider or "",
        )
        bucket = expected.setdefault(key, Counter())
        bucket["requests"] += 1
        bucket["blocked"] += d.blocked
        bucket["rerouted"] += not d.blocked and d.actual_model != d.requested_model
        bucket["would_blocked"] += d.would_action is RoutingAction.BLOCK
        saved, extra = routing_difference(d.requested_cost_usd, d.actual_cost_usd)
        savings[key] = savings.get(key, Decimal(0)) + saved
        extras[key] = extras.get(key, Decimal(0)) + extra
        if d.usage is not None:
            bucket["settled"] += 1
            bucket["input_tokens"] += d.usage.input_tokens
            bucket["output_tokens"] += d.usage.output_tokens
            bucket["unpriced"] += d.actual_cost_usd is None
            costs[key] = costs.get(key, Decimal(0)) + (d.actual_cost_usd or 0)
    assert len(totals) == len(expected)
    assert sum(savings.values()) > 0
    assert sum(extras.values()) > 0
    for row in totals:
        g = row.group
        key = (g["hour"], g["project"], g["principal"], g["model"], g["provider"])
        want = expected[key]
        got = Counter(
            {name: getattr(row, name) for name in want.keys() | {"requests"} if getattr(row, name)}
        )
        assert got == +want, key
        assert row.cost_usd == costs.get(key, 0)
        assert row.saved_usd == savings[key]
        assert row.extra_usd == extras[key]

    by_day = journal.usage_totals(group_by=("day",))
    assert sum(t.requests for t in by_day) == 400
    assert [t.group["day"] for t in by_day] == sorted({k[0].date() for k in expected})
    (acme,) = journal.usage_totals(project="acme")
    assert acme.requests == sum(b["requests"] for k, b in expected.items() if k[1] == "acme")
    assert journal.usage_totals(since=NOW + timedelta(days=5)) == [UsageTotals()]


def test_prune_keeps_rollups(journal: Journal) -> None:
    for n in range(40):
        journal.append_decision(make_decision(n, created_at=NOW + timedelta(hours=n)))
    journal.add_to_counters({CounterKey("p", "m", "2026-03-01T00:00:00Z"): Decimal(1)})
    journal.add_to_counters({CounterKey("p", "m", "2026-03-20T00:00:00Z"): Decimal(2)})
    assert journal.flush(timeout=10)
    assert journal.prune_decisions(NOW + timedelta(hours=30), batch_size=7) == 30
    assert count(journal, schema.routing_decisions) == 10
    (totals,) = journal.usage_totals()
    assert totals.requests == 40
    assert journal.prune_counters("2026-03-10T00:00:00Z") == 1
    assert list(journal.load_counters()) == [CounterKey("p", "m", "2026-03-20T00:00:00Z")]
