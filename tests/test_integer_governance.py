"""Governance in integer attos is exact: every sum, limit, threshold, verdict and settlement
equals what exact ``Decimal`` arithmetic gives, and what cannot be exact (a cost finer than
an atto) is rounded up, never down."""

from __future__ import annotations

from decimal import Context, Decimal, localcontext

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ACME, NOW, attos, chat, policy, state
from spendgate.domain.amounts import (
    ATTO,
    MAX_AMOUNT,
    amount_problem,
    atto_text,
    decimal_amounts,
    from_atto,
    to_atto,
)
from spendgate.domain.budgets import (
    BudgetFilters,
    BudgetPolicy,
    BudgetStatus,
    CounterKey,
    CounterState,
    HardAction,
    Metric,
    OverrideGrant,
    PolicyIndex,
    SoftAction,
    applicable_policies,
    evaluate_policy,
)
from spendgate.domain.pricing import PricingRecord, Usage, cost_of
from spendgate.domain.reservations import ReservationLine, usage_amount
from spendgate.domain.scopes import RequestScopes, ScopeKind, ScopeRef
from spendgate.domain.windows import Interval, IntervalKind, window_for
from spendgate.governor import Governor
from spendgate.ledger.memory import MemoryLedger

# Exact Decimal arithmetic for the reference: wide enough that nothing below rounds.
EXACT = Context(prec=200)
WINDOW = window_for(Interval(IntervalKind.DAILY), NOW)
KEY = CounterKey("cap", "acme", WINDOW.key)


def amounts(places: int = 18, high: int = 10**12) -> st.SearchStrategy[Decimal]:
    """Non-negative amounts a record may hold (at most 18 places)."""
    return st.decimals(min_value=0, max_value=high, places=places, allow_nan=False)


LIMITS = st.decimals(min_value=Decimal("1e-18"), max_value=10**12, places=18, allow_nan=False)
FRACTIONS = st.decimals(min_value=Decimal("1e-18"), max_value=1, places=18, allow_nan=False)
# Any finite value, however many places: what ``to_atto`` must round up.
FINE = st.decimals(
    min_value=-(10**12), max_value=10**12, allow_nan=False, allow_infinity=False, places=30
)


@given(amounts())
def test_an_amount_of_at_most_18_places_is_exact_in_attos(value: Decimal) -> None:
    assert amount_problem(value) is None
    atto = to_atto(value)
    assert from_atto(atto) == value
    assert atto_text(atto) == str(from_atto(atto))
    assert Decimal(atto_text(atto)) == value


@given(FINE)
def test_a_finer_value_is_rounded_up_to_the_next_atto(value: Decimal) -> None:
    atto = to_atto(value)
    with localcontext(EXACT):
        assert from_atto(atto) >= value
        assert from_atto(atto) - value < Decimal("1e-18")


@given(st.integers(min_value=-(10**40), max_value=10**40))
def test_from_atto_is_exact_and_without_trailing_zeros(atto: int) -> None:
    value = from_atto(atto)
    assert to_atto(value) == atto
    assert value == value.normalize(EXACT)
    assert "E+" not in str(value)
    assert atto_text(atto) == str(value)


@given(st.lists(amounts(), max_size=30))
def test_sums_in_attos_are_the_exact_decimal_sums(values: list[Decimal]) -> None:
    with localcontext(EXACT):
        expected = sum(values, Decimal(0))
    assert from_atto(sum(map(to_atto, values))) == expected
    assert CounterState.of(expected, Decimal(0)) == sum(
        (CounterState.of(v) for v in values), CounterState()
    )


@given(LIMITS, FRACTIONS, amounts(), amounts())
def test_threshold_attos_compare_exactly(
    hard: Decimal, fraction: Decimal, settled: Decimal, amount: Decimal
) -> None:
    """``projected >= fraction × limit`` decided on integers, as on exact decimals."""
    p = policy(hard=str(hard), alert_thresholds=(fraction,))
    ((_, threshold),) = p.threshold_attos
    with localcontext(EXACT):
        projected = settled + amount
        crossed = projected >= fraction * hard
    assert (to_atto(settled) + to_atto(amount) >= threshold) == crossed
    assert p.hard_atto == to_atto(hard)


def reference_status(
    hard: Decimal,
    soft: Decimal | None,
    thresholds: tuple[Decimal, ...],
    settled: Decimal,
    reserved: Decimal,
    amount: Decimal,
    extra: Decimal | None,
) -> tuple[BudgetStatus, Decimal | None]:
    """The verdict in exact Decimal arithmetic (the rules of ``evaluate_policy``)."""
    with localcontext(EXACT):
        projected = settled + reserved + amount
        if projected > hard:
            if extra is not None and projected <= hard + extra:
                return BudgetStatus.OVERRIDE_APPLIED, None
            return BudgetStatus.BLOCKED, None
        if soft is not None and projected > soft:
            return BudgetStatus.DEGRADED, None
        for fraction in sorted(set(thresholds), reverse=True):
            if projected >= fraction * hard:
                return BudgetStatus.THRESHOLD, fraction
    return BudgetStatus.OK, None


@settings(max_examples=300)
@given(
    hard=LIMITS,
    soft_share=st.none() | FRACTIONS,
    thresholds=st.lists(FRACTIONS, min_size=1, max_size=4),
    settled=amounts(),
    reserved=amounts(high=10**6),
    amount=amounts(high=10**6),
    extra=st.none() | amounts(high=10**6),
)
def test_verdicts_in_attos_are_those_of_exact_decimals(
    hard: Decimal,
    soft_share: Decimal | None,
    thresholds: list[Decimal],
    settled: Decimal,
    reserved: Decimal,
    amount: Decimal,
    extra: Decimal | None,
) -> None:
    with localcontext(EXACT):
        soft = None if soft_share is None else (soft_share * hard).quantize(Decimal("1e-18"))
    p = policy(
        hard=str(hard),
        soft=None if soft is None else str(soft),
        soft_action=SoftAction.DEGRADE,
        hard_action=HardAction.BLOCK,
        alert_thresholds=tuple(thresholds),
    )
    grant = None if extra is None else OverrideGrant("p", "apr_1", extra)
    evaluation = evaluate_policy(
        p, "acme", WINDOW, CounterState.of(settled, reserved), amount, grant=grant
    )
    expected = reference_status(hard, soft, tuple(thresholds), settled, reserved, amount, extra)
    assert (evaluation.status, evaluation.threshold) == expected
    with localcontext(EXACT):
        assert evaluation.projected == settled + reserved + amount
        assert evaluation.remaining == max(hard - settled - reserved, Decimal(0))
    assert evaluation.request_amount is amount  # recorded as estimated, not re-rendered


PRICES = st.decimals(min_value=0, max_value=10_000, places=18, allow_nan=False)


@given(
    record=st.builds(
        PricingRecord,
        model=st.just("m"),
        input_per_mtok=PRICES,
        output_per_mtok=PRICES,
        cached_input_per_mtok=st.none() | PRICES,
        per_request=amounts(high=10),
    ),
    usage=st.builds(
        Usage,
        input_tokens=st.integers(0, 10**7),
        output_tokens=st.integers(0, 10**6),
        cached_input_tokens=st.integers(0, 10**7),
    ),
)
def test_a_settled_cost_is_counted_exactly_or_one_atto_up(
    record: PricingRecord, usage: Usage
) -> None:
    """Catalog prices (≤ 6 places) give costs exact in attos; a price with more places can
    give a finer cost, counted at most one atto high, never low."""
    with localcontext(EXACT):
        cost = cost_of(record, usage)
        atto = usage_amount(Metric.USD, usage, cost)
        assert atto is not None
        assert Decimal(0) <= from_atto(atto) - cost < Decimal("1e-18")
    places = max(
        -min(v.normalize().as_tuple().exponent, 0)  # type: ignore[operator]
        for v in (record.input_per_mtok, record.output_per_mtok, record.cached_rate)
    )
    if places <= 12 and amount_problem(record.per_request) is None:
        assert from_atto(atto) == cost
    assert usage_amount(Metric.TOKENS, usage, cost) == usage.total_tokens * ATTO
    assert usage_amount(Metric.REQUESTS, usage, cost) == ATTO


@settings(max_examples=150)
@given(
    limit=amounts(high=100),
    steps=st.lists(
        st.tuples(st.sampled_from(["reserve", "settle", "release", "stale"]), amounts(high=10)),
        max_size=40,
    ),
)
def test_the_ledger_counts_as_exact_decimals_and_never_overspends(
    limit: Decimal, steps: list[tuple[str, Decimal]]
) -> None:
    """Reserve, settle and release on ``MemoryLedger`` against a Decimal model of the same
    counter; a reservation carrying a sum read before the counter changed ("stale") is
    checked against the counter as it is, never against the sum it carries."""
    ledger = MemoryLedger()
    settled, held = Decimal(0), dict[str, Decimal]()
    for n, (action, amount) in enumerate(steps):
        rid = f"r{n}"
        if action in ("reserve", "stale"):
            read_at = ledger.version
            seen = ledger.read_total((KEY,)).consumed_atto
            if action == "stale" and held:  # the counter moves between planning and reserving
                first = next(iter(held))
                ledger.settle(first, attos({KEY: held[first]}))
                with localcontext(EXACT):
                    settled += held.pop(first)
            line = ReservationLine("cap", (KEY,), to_atto(amount), to_atto(limit), seen)
            outcome = ledger.reserve(rid, [line], NOW, read_at=read_at)
            with localcontext(EXACT):
                fits = settled + sum(held.values(), Decimal(0)) + amount <= limit
            assert outcome.ok == fits
            if outcome.ok:
                held[rid] = amount
        elif held:
            victim = sorted(held)[n % len(held)]
            if action == "settle":
                with localcontext(EXACT):
                    half = held[victim] / 2
                    used = from_atto(to_atto(half))  # what the ledger is given: rounded up
                    assert half <= used <= held[victim]
                    settled += used
                ledger.settle(victim, attos({KEY: used}))
            else:
                ledger.release(victim)
            del held[victim]
        with localcontext(EXACT):
            reserved = sum(held.values(), Decimal(0))
            assert ledger.read(KEY) == CounterState.of(settled, reserved)
            assert settled + reserved <= limit  # usage settles within its hold: no overspend


@given(st.dictionaries(st.text(max_size=3), st.integers(0, 10**30), max_size=10))
def test_decimal_amounts_converts_each_value_exactly(values: dict[str, int]) -> None:
    converted = decimal_amounts(values)
    assert converted.keys() == values.keys()
    assert all(to_atto(converted[key]) == atto for key, atto in values.items())


def test_policy_attos_are_computed_once_and_bad_limits_do_not_plan() -> None:
    p = policy(hard="0.000000000000000001", soft="1e-18", alert_thresholds=(Decimal("0.5"),))
    assert (p.hard_atto, p.soft_atto, p.threshold_attos) == (1, 1, ((Decimal("0.5"), 1),))
    huge = policy(hard="1e16")  # beyond MAX_AMOUNT: reported by policy_problems
    assert huge.hard_atto == 0
    assert huge.threshold_attos == ()
    assert to_atto(MAX_AMOUNT) == MAX_AMOUNT * ATTO


IDS = st.sampled_from(["acme", "alice", "k1", "*", "global"])
NAMES = st.none() | st.frozensets(st.sampled_from(["m1", "m2", "p1", "p2", "t1"]), max_size=2)


@given(
    specs=st.lists(
        st.tuples(st.sampled_from(list(ScopeKind)), IDS, NAMES, NAMES, st.booleans()),
        max_size=12,
    ),
    scopes=st.builds(
        RequestScopes,
        project=st.none() | IDS,
        principal=st.none() | IDS,
        api_key=st.none() | IDS,
        agent=st.none() | IDS,
        session=st.none() | IDS,
    ),
    model=st.sampled_from(["m1", "m2"]),
    provider=st.sampled_from(["p1", "p2"]),
)
def test_the_policy_index_finds_what_matching_every_policy_finds(
    specs: list[tuple[ScopeKind, str, frozenset[str] | None, frozenset[str] | None, bool]],
    scopes: RequestScopes,
    model: str,
    provider: str,
) -> None:
    policies = [
        BudgetPolicy(
            id=f"p{n}",
            scope=ScopeRef(kind, "global" if kind is ScopeKind.GLOBAL else ident),
            metric=Metric.USD,
            interval=Interval(IntervalKind.DAILY),
            hard_limit=Decimal(1),
            filters=BudgetFilters(models=models, providers=providers),
            enabled=enabled,
        )
        for n, (kind, ident, models, providers, enabled) in enumerate(specs)
    ]
    expected = applicable_policies(policies, scopes, model, provider, "primary_interactive")
    index = PolicyIndex(policies)
    assert index.applicable(scopes, model, provider, "primary_interactive") == expected


def test_a_sum_read_from_one_ledger_is_never_reused_by_another() -> None:
    """Versions are unique across ledgers: a line carrying another ledger's sum is checked
    against the counters of the ledger it is reserved on."""
    empty, full = MemoryLedger(), MemoryLedger()
    full.settle("used", {KEY: 10 * ATTO})
    assert empty.version != full.version
    line = ReservationLine("cap", (KEY,), ATTO, 10 * ATTO, empty.read_total((KEY,)).consumed_atto)
    assert not full.reserve("r", [line], NOW, read_at=empty.version).ok


def test_requests_planned_together_cannot_both_pass_a_limit() -> None:
    """Two plans read the same counters; the first reservation changes them, so the second
    is checked against the counters again (never against the sum its plan read)."""
    ledger = MemoryLedger()
    governor = Governor(state([policy("one", metric=Metric.REQUESTS, hard="1")]), ledger)
    first = governor.plan(chat("hi"), ACME, NOW)
    second = governor.plan(chat("hi"), ACME, NOW)
    assert first.counters_read_at == second.counters_read_at == ledger.version
    assert governor.reserve(first).ok
    outcome = governor.reserve(second)
    assert not outcome.ok
    assert outcome.refused_policy == "one"
    third = governor.plan(chat("hi"), ACME, NOW)  # planned on the current counters
    assert third.blocked
