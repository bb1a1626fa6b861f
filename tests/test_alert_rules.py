"""The alert rules (``domain.alerts``), property-tested: a spike is a rise and never a drop;
thresholds are announced once per member and window and only grow with consumption; a
forecast only ever names a time inside the window; a steady spend is never an anomaly; a
flapping provider raises one alert and clears only when steadily healthy."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from conftest import NOW, policy
from spendgate.domain.alerts import (
    AlertKind,
    HealthHysteresis,
    Severity,
    SpendBaseline,
    budget_conditions,
    exhaustion_forecast,
    is_cost_spike,
)
from spendgate.domain.budgets import HardAction, Metric
from spendgate.domain.windows import Interval, IntervalKind, window_for

WINDOW = window_for(Interval(IntervalKind.DAILY), NOW)
MONEY = st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False, allow_infinity=False)
SPIKE, FACTOR = Decimal("0.50"), Decimal(5)


def test_thresholds_then_exhaustion_with_stable_keys() -> None:
    budget = policy("acme-daily", hard="10", hard_action=HardAction.BLOCK)
    assert budget_conditions(budget, "acme", WINDOW, Decimal("4.99")) == []
    half = budget_conditions(budget, "acme", WINDOW, Decimal(5))
    assert [(c.kind, c.severity) for c in half] == [(AlertKind.BUDGET_THRESHOLD, Severity.WARNING)]
    assert half[0].summary == "Budget acme-daily for acme passed 50% of its limit"
    assert half[0].scope == "project:acme"
    full = budget_conditions(budget, "acme", WINDOW, Decimal(10))
    assert [c.kind for c in full] == [AlertKind.BUDGET_THRESHOLD] * 3 + [AlertKind.BUDGET_EXHAUSTED]
    assert full[-1].severity is Severity.CRITICAL
    assert "hard action (block)" in full[-1].reason
    assert full[-1].summary == "Budget acme-daily for acme is exhausted"
    # Refused before it is spent (a worst case did not fit): the same alert, not "exhausted".
    early = budget_conditions(budget, "acme", WINDOW, Decimal(1), refused=True)
    assert [c.kind for c in early] == [AlertKind.BUDGET_EXHAUSTED]
    assert early[0].dedupe_key == full[-1].dedupe_key
    assert early[0].summary == (
        "Budget acme-daily for acme refused a request (worst case over limit)"
    )
    assert "would have passed the limit" in early[0].reason
    # The 50% condition is the same one later in the window: one alert, not a new one.
    assert full[0].dedupe_key == half[0].dedupe_key
    # Another member, or the next window, is another condition.
    assert (
        budget_conditions(budget, "globex", WINDOW, Decimal(5))[0].dedupe_key != half[0].dedupe_key
    )
    tomorrow = window_for(Interval(IntervalKind.DAILY), NOW + timedelta(days=1))
    assert budget_conditions(budget, "acme", tomorrow, Decimal(5))[0].dedupe_key != (
        half[0].dedupe_key
    )


@given(low=MONEY, high=MONEY)
def test_conditions_only_grow_with_consumption(low: Decimal, high: Decimal) -> None:
    low, high = min(low, high), max(low, high)
    budget = policy("tokens", metric=Metric.TOKENS, hard="500")
    before = {c.dedupe_key for c in budget_conditions(budget, "acme", WINDOW, low)}
    after = {c.dedupe_key for c in budget_conditions(budget, "acme", WINDOW, high)}
    assert before <= after


@given(cost=MONEY, recent=st.lists(MONEY, max_size=30))
def test_a_cost_at_or_below_the_usual_is_never_a_spike(
    cost: Decimal, recent: list[Decimal]
) -> None:
    spike = is_cost_spike(cost, recent, SPIKE, FACTOR)
    if cost <= SPIKE:  # under the absolute threshold
        assert not spike
    if recent and cost <= sorted(recent)[len(recent) // 2]:  # at or below the usual: a drop
        assert not spike
    if spike:  # what fires is a rise above both thresholds
        assert cost > SPIKE
        assert not recent or cost > FACTOR * min(recent)


@given(
    recent=st.lists(st.decimals(min_value="0.01", max_value=1, places=4), min_size=1, max_size=30)
)
def test_a_rise_above_both_thresholds_is_a_spike(recent: list[Decimal]) -> None:
    usual = sorted(recent)[len(recent) // 2]
    rise = max(max(recent) * FACTOR, SPIKE) + Decimal("0.01")
    assert is_cost_spike(rise, recent, SPIKE, FACTOR)
    assert not is_cost_spike(min(usual, SPIKE), recent, SPIKE, FACTOR)


def test_without_history_the_absolute_threshold_decides() -> None:
    assert is_cost_spike(Decimal("0.51"), [], SPIKE, FACTOR)
    assert not is_cost_spike(Decimal("0.50"), [], SPIKE, FACTOR)
    # $2 after a run of $1 requests is a rise but not 5×: no alert.
    assert not is_cost_spike(Decimal(2), [Decimal(1)] * 10, SPIKE, FACTOR)


@given(
    consumed=st.decimals(min_value="0.001", max_value=99, places=3),
    hours=st.integers(min_value=1, max_value=23),
)
def test_a_forecast_names_a_time_inside_the_window_or_none(consumed: Decimal, hours: int) -> None:
    now = WINDOW.start + timedelta(hours=hours)
    at = exhaustion_forecast(consumed, Decimal(100), WINDOW, now)
    if at is not None:
        assert now < at < WINDOW.end
    # At a pace that reaches 100 by the end or later, there is no forecast.
    elapsed = hours / 24
    if float(consumed) / elapsed * 1 < 100 * 0.999:
        assert at is None


def test_forecast_examples() -> None:
    six = WINDOW.start + timedelta(hours=6)
    # 50 of 100 in 6 hours: reached 6 hours later, at noon.
    assert exhaustion_forecast(Decimal(50), Decimal(100), WINDOW, six) == six + timedelta(hours=6)
    assert exhaustion_forecast(Decimal(10), Decimal(100), WINDOW, six) is None  # 40 by midnight
    assert exhaustion_forecast(Decimal(100), Decimal(100), WINDOW, six) is None  # reached
    assert exhaustion_forecast(Decimal(0), Decimal(100), WINDOW, six) is None


@given(spend=st.floats(min_value=0, max_value=1000), hours=st.integers(min_value=1, max_value=200))
def test_a_steady_spend_is_never_an_anomaly(spend: float, hours: int) -> None:
    baseline = SpendBaseline()
    for _ in range(hours):
        assert not baseline.anomaly(spend)
        baseline = baseline.observe(spend)


def test_a_sudden_hour_far_above_its_baseline_is_an_anomaly() -> None:
    baseline = SpendBaseline()
    for hour in range(24):
        baseline = baseline.observe(10 + (hour % 3))  # $10-12 an hour
    assert not baseline.anomaly(13)
    assert baseline.anomaly(60)
    assert not SpendBaseline().observe(0.1).anomaly(60)  # no history yet: no "usual"


@given(observations=st.lists(st.booleans(), max_size=60))
def test_a_flapping_provider_is_raised_once_and_cleared_only_when_steady(
    observations: list[bool],
) -> None:
    state = HealthHysteresis()
    changes = 0
    for healthy in observations:
        after = state.observe(healthy)
        changes += after.raised != state.raised
        state = after
    # Each change needs at least two observations in a row against the current state.
    assert changes <= len(observations) // 2
    # Alternating good and bad never makes a streak: nothing is ever raised.
    flapping = HealthHysteresis()
    for healthy in [False, True] * 20:
        flapping = flapping.observe(healthy)
        assert not flapping.raised


def test_health_hysteresis_examples() -> None:
    state = HealthHysteresis()
    state = state.observe(False)
    assert not state.raised  # one failure is not an outage
    state = state.observe(False)
    assert state.raised
    for healthy in (True, True, False, True, True):
        state = state.observe(healthy)
        assert state.raised  # not three good in a row yet
    state = state.observe(True)
    assert not state.raised


def test_an_unreachable_ledger_is_one_critical_alert_per_ledger_saying_what_requests_get() -> None:
    from spendgate.domain.alerts import ledger_condition

    admitting = ledger_condition("spendgate", admitting=True)
    refusing = ledger_condition("spendgate", admitting=False)
    assert admitting.kind is refusing.kind is AlertKind.LEDGER_UNAVAILABLE
    assert admitting.severity is refusing.severity is Severity.CRITICAL
    # The same outage, whatever is counted and whichever mode reports it: one alert.
    assert admitting.dedupe_key == refusing.dedupe_key == "ledger_unavailable|spendgate"
    assert ledger_condition("other", admitting=True).dedupe_key != admitting.dedupe_key
    assert "admitted unchecked" in admitting.summary
    assert "admitted without a budget check" in admitting.reason
    assert "503 ledger_unavailable" in refusing.reason
    assert "refused" in refusing.summary
    assert admitting.scope == "ledger:spendgate"
