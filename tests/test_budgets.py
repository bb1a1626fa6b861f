"""Budget policies: scope and window honoured, cumulative metrics, statuses, most severe."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import ACME, NOW, policy
from spendgate.domain.budgets import (
    BudgetFilters,
    BudgetStatus,
    CounterKey,
    CounterState,
    HardAction,
    Metric,
    OverrideGrant,
    SoftAction,
    UnpricedAction,
    applicable_policies,
    counter_changes,
    counters_for,
    counting_changes,
    evaluate_policy,
    is_live,
    live_windows,
    most_severe,
    policy_problems,
)
from spendgate.domain.scopes import RequestScopes, ScopeKind, ScopeRef
from spendgate.domain.windows import Interval, IntervalKind, Window, counter_buckets, window_for

WINDOW = window_for(Interval(IntervalKind.DAILY), NOW)


def judge(
    consumed: str = "0",
    amount: str | None = "1",
    reserved: str = "0",
    **kwargs: object,
) -> BudgetStatus:
    grant = kwargs.pop("grant", None)
    unpriced = kwargs.pop("unpriced_action", UnpricedAction.ESTIMATE)
    p = policy(**kwargs)  # type: ignore[arg-type]
    return evaluate_policy(
        p,
        "acme",
        WINDOW,
        CounterState.of(Decimal(consumed), Decimal(reserved)),
        None if amount is None else Decimal(amount),
        grant=grant,  # type: ignore[arg-type]
        unpriced_action=unpriced,  # type: ignore[arg-type]
    ).status


class TestApplicability:
    def test_project_policy_applies_only_to_its_project(self) -> None:
        p = policy(member="acme")
        other = RequestScopes(project="globex", principal="bob")
        assert applicable_policies([p], ACME, "m", "prov", "primary_interactive") == [(p, "acme")]
        assert applicable_policies([p], other, "m", "prov", "primary_interactive") == []

    @pytest.mark.parametrize(
        ("kind", "member"),
        [
            (ScopeKind.PRINCIPAL, "alice"),
            (ScopeKind.API_KEY, "k1"),
            (ScopeKind.AGENT, "bot"),
            (ScopeKind.SESSION, "s1"),
            (ScopeKind.GLOBAL, "global"),
        ],
    )
    def test_each_scope_kind_matches_its_member(self, kind: ScopeKind, member: str) -> None:
        p = policy(kind=kind, member=member)
        assert applicable_policies([p], ACME, "m", "prov", "t") == [(p, member)]

    def test_each_member_wildcard_counts_per_member(self) -> None:
        p = policy(kind=ScopeKind.SESSION, member="*")
        first = applicable_policies([p], RequestScopes(session="a"), "m", "prov", "t")
        second = applicable_policies([p], RequestScopes(session="b"), "m", "prov", "t")
        assert first == [(p, "a")]
        assert second == [(p, "b")]
        keys_a, _ = counters_for(p, "a", NOW)
        keys_b, _ = counters_for(p, "b", NOW)
        assert keys_a != keys_b

    def test_request_without_the_scope_is_not_counted(self) -> None:
        p = policy(kind=ScopeKind.SESSION, member="*")
        assert applicable_policies([p], RequestScopes(project="acme"), "m", "prov", "t") == []

    def test_filters_narrow_by_model_provider_and_task_class(self) -> None:
        p = policy(
            filters=BudgetFilters(
                models=frozenset({"gpt-4o"}),
                providers=frozenset({"openai"}),
                task_classes=frozenset({"primary_interactive"}),
            )
        )
        assert applicable_policies([p], ACME, "gpt-4o", "openai", "primary_interactive")
        assert not applicable_policies([p], ACME, "gpt-4o-mini", "openai", "primary_interactive")
        assert not applicable_policies([p], ACME, "gpt-4o", "azure", "primary_interactive")
        assert not applicable_policies([p], ACME, "gpt-4o", "openai", "auxiliary_summary")

    def test_disabled_policy_never_applies(self) -> None:
        assert applicable_policies([policy(enabled=False)], ACME, "m", "p", "t") == []

    def test_every_applicable_policy_applies(self) -> None:
        policies = [policy("a"), policy("b", kind=ScopeKind.PRINCIPAL, member="alice")]
        assert len(applicable_policies(policies, ACME, "m", "p", "t")) == 2


class TestWindowsHonoured:
    """Defect §6.1: each policy counts only its scope and its own window."""

    def test_daily_counter_changes_with_the_day(self) -> None:
        p = policy()
        today, window = counters_for(p, "acme", NOW)
        tomorrow, _ = counters_for(p, "acme", NOW + timedelta(days=1))
        assert today != tomorrow
        assert window.contains(NOW)

    def test_window_in_policy_timezone(self) -> None:
        p = policy(interval=Interval(IntervalKind.DAILY, "Asia/Tokyo"))
        _, window = counters_for(p, "acme", NOW)
        assert window.start.hour == 15  # midnight in Tokyo is 15:00 UTC the day before

    def test_rolling_window_spans_several_buckets(self) -> None:
        p = policy(interval=Interval(IntervalKind.ROLLING, duration=timedelta(hours=24)))
        keys, window = counters_for(p, "acme", NOW)
        assert len(keys) >= 24
        assert window.end > NOW >= window.start
        assert window.end - window.start >= timedelta(hours=24)


class TestStatuses:
    def test_ok_within_limit(self) -> None:
        assert judge("1", "1") is BudgetStatus.OK

    def test_cumulative_usd_counts_consumed_plus_request(self) -> None:
        """Defect §6.2: USD budgets are cumulative, not per request."""
        assert judge("9.5", "1") is BudgetStatus.BLOCKED
        assert judge("0", "1") is BudgetStatus.OK

    def test_in_flight_reservations_count(self) -> None:
        assert judge("5", "1", reserved="4.5") is BudgetStatus.BLOCKED

    def test_exactly_at_the_limit_is_allowed(self) -> None:
        assert judge("9", "1") is not BudgetStatus.BLOCKED

    def test_highest_crossed_threshold_is_reported(self) -> None:
        p = policy()
        evaluation = evaluate_policy(
            p, "acme", WINDOW, CounterState.of(Decimal("8")), Decimal("0.5")
        )
        assert evaluation.status is BudgetStatus.THRESHOLD
        assert evaluation.threshold == Decimal("0.8")
        assert "80%" in evaluation.message

    def test_soft_limit_alert_and_degrade(self) -> None:
        assert judge("5", "1", soft="5") is BudgetStatus.SOFT_LIMIT
        assert judge("5", "1", soft="5", soft_action=SoftAction.DEGRADE) is BudgetStatus.DEGRADED

    @pytest.mark.parametrize(
        ("action", "status"),
        [
            (HardAction.BLOCK, BudgetStatus.BLOCKED),
            (HardAction.REQUIRE_APPROVAL, BudgetStatus.APPROVAL_REQUIRED),
            (HardAction.DEGRADE, BudgetStatus.DEGRADED),
            (HardAction.ALERT, BudgetStatus.HARD_LIMIT),
        ],
    )
    def test_hard_actions(self, action: HardAction, status: BudgetStatus) -> None:
        assert judge("10", "1", hard_action=action) is status

    def test_override_grant_covers_up_to_its_extra(self) -> None:
        grant = OverrideGrant("p", "appr-1", extra=Decimal("5"))
        assert judge("10", "1", grant=grant) is BudgetStatus.OVERRIDE_APPLIED
        assert judge("14", "2", grant=grant) is BudgetStatus.BLOCKED
        uncapped = OverrideGrant("p", "appr-2")
        assert judge("100", "1", grant=uncapped) is BudgetStatus.OVERRIDE_APPLIED

    def test_unpriced_is_never_zero(self) -> None:
        """Defect §7.8: an unpriced model is reported, never counted as $0."""
        assert judge("0", None) is BudgetStatus.UNPRICED
        assert judge("0", None, unpriced_action=UnpricedAction.BLOCK) is BudgetStatus.BLOCKED

    def test_tokens_and_requests_metrics_are_cumulative(self) -> None:
        assert judge("999", "2", metric=Metric.TOKENS, hard="1000") is BudgetStatus.BLOCKED
        assert judge("9", "1", metric=Metric.REQUESTS, hard="10") is not BudgetStatus.BLOCKED
        assert judge("10", "1", metric=Metric.REQUESTS, hard="10") is BudgetStatus.BLOCKED

    def test_messages_explain_the_numbers(self) -> None:
        p = policy(hard="10")
        evaluation = evaluate_policy(p, "acme", WINDOW, CounterState.of(Decimal("9.5")), Decimal(1))
        assert "9.5 used + 1" in evaluation.message
        assert "hard limit 10" in evaluation.message
        assert evaluation.remaining == Decimal("0.5")


class TestMostSevere:
    """Defect §6.11: the most severe evaluation decides, not the last one."""

    def test_order_does_not_matter(self) -> None:
        block = evaluate_policy(
            policy("a"), "acme", WINDOW, CounterState.of(Decimal(10)), Decimal(1)
        )
        fine = evaluate_policy(policy("b"), "acme", WINDOW, CounterState.of(), Decimal(1))
        assert most_severe([block, fine]) is block
        assert most_severe([fine, block]) is block
        assert most_severe([]) is None

    def test_severity_order(self) -> None:
        order = [
            BudgetStatus.OK,
            BudgetStatus.THRESHOLD,
            BudgetStatus.SOFT_LIMIT,
            BudgetStatus.HARD_LIMIT,
            BudgetStatus.DEGRADED,
            BudgetStatus.APPROVAL_REQUIRED,
            BudgetStatus.BLOCKED,
        ]
        assert [s.severity for s in order] == sorted(s.severity for s in order)


money = st.decimals(min_value=0, max_value=10_000, places=6, allow_nan=False)
positive = st.decimals(min_value=Decimal("0.000001"), max_value=10_000, places=6)


class TestBudgetArithmeticProperties:
    @given(settled=money, reserved=money, amount=money, hard=positive)
    def test_projected_at_least_consumed_and_hard_limit_never_ok(
        self, settled: Decimal, reserved: Decimal, amount: Decimal, hard: Decimal
    ) -> None:
        p = policy(hard=str(hard))
        evaluation = evaluate_policy(p, "acme", WINDOW, CounterState.of(settled, reserved), amount)
        assert evaluation.projected >= evaluation.consumed
        assert evaluation.projected == settled + reserved + amount  # exact, no float drift
        if evaluation.projected > hard:
            assert evaluation.status is BudgetStatus.BLOCKED
        else:
            assert evaluation.status is not BudgetStatus.BLOCKED

    @given(
        increments=st.lists(
            st.decimals(min_value=0, max_value=1, places=10), min_size=1, max_size=200
        )
    )
    def test_sums_of_small_increments_are_exact(self, increments: list[Decimal]) -> None:
        state = CounterState.of()
        for increment in increments:
            state = state + CounterState.of(increment, Decimal(0))
        assert state.settled == sum(increments, Decimal(0))
        as_float = sum(float(i) for i in increments)
        assert abs(float(state.settled) - as_float) < 1e-6  # sanity: same magnitude

    @given(
        first=money,
        extra=money,
        amount=money,
        action=st.sampled_from(list(HardAction)),
        soft_action=st.sampled_from(list(SoftAction)),
    )
    def test_severity_never_decreases_as_consumption_grows(
        self,
        first: Decimal,
        extra: Decimal,
        amount: Decimal,
        action: HardAction,
        soft_action: SoftAction,
    ) -> None:
        p = policy(hard="100", soft="60", hard_action=action, soft_action=soft_action)
        low = evaluate_policy(p, "acme", WINDOW, CounterState.of(first), amount)
        high = evaluate_policy(p, "acme", WINDOW, CounterState.of(first + extra), amount)
        rank = {
            BudgetStatus.OK: 0,
            BudgetStatus.THRESHOLD: 1,
            BudgetStatus.SOFT_LIMIT: 2,
            BudgetStatus.DEGRADED: 2 if soft_action is SoftAction.DEGRADE else 3,
            BudgetStatus.HARD_LIMIT: 3,
            BudgetStatus.APPROVAL_REQUIRED: 3,
            BudgetStatus.BLOCKED: 3,
        }
        if low.status is BudgetStatus.DEGRADED and high.status is BudgetStatus.DEGRADED:
            return
        assert rank[high.status] >= rank[low.status]


# --- which counters can still be read (pruning, start-up load) --------------------------------

LIVE_POLICIES = (
    policy("day", interval=Interval(IntervalKind.DAILY, "Europe/Prague")),
    policy("month", interval=Interval(IntervalKind.MONTHLY)),
    policy("roll", interval=Interval(IntervalKind.ROLLING, duration=timedelta(hours=2))),
    policy("off", interval=Interval(IntervalKind.HOURLY), enabled=False),
)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_every_counter_a_request_reads_is_live_and_earlier_windows_are_not(at: datetime) -> None:
    now = at.replace(tzinfo=UTC)
    live = live_windows(LIVE_POLICIES, now)
    for budget in LIVE_POLICIES:
        keys, window = counters_for(budget, "acme", now)
        assert all(is_live(live, key.policy_id, key.window) for key in keys)
        # The window (or oldest bucket) before the oldest one read is never read again.
        before, _ = counters_for(budget, "acme", window.start - timedelta(microseconds=1))
        assert not is_live(live, budget.id, before[0].window)


def test_counters_of_unknown_policies_are_not_live() -> None:
    live = live_windows(LIVE_POLICIES, NOW)
    keys, _ = counters_for(policy("deleted"), "acme", NOW)
    assert not is_live(live, "deleted", keys[0].window)
    assert set(live) == {"day", "month", "roll", "off"}
    assert live["month"] == "2026-11-01T00:00:00Z"
    assert live["day"] == "2026-11-24T23:00:00Z"  # Prague midnight in UTC
    assert live["roll"] == "2026-11-25T10:00:00Z"  # the 5-minute bucket holding now - 2 h


def test_an_id_defined_twice_keeps_the_older_window() -> None:
    twice = (policy("x", interval=Interval(IntervalKind.DAILY)), policy("x"))
    monthly = policy("x", interval=Interval(IntervalKind.MONTHLY))
    assert live_windows((*twice, monthly), NOW) == {"x": "2026-11-01T00:00:00Z"}


# -- counting identity and bounds --------------------------------------------------------------


def test_a_new_generation_reads_other_counters_than_the_old_one() -> None:
    first = policy("team", metric=Metric.TOKENS)
    again = replace(first, metric=Metric.USD, generation=1)
    assert first.counter_id == "team"
    assert again.counter_id == "team 1"  # ids hold no whitespace: never another policy's
    old_keys, window = counters_for(first, "acme", NOW)
    new_keys, same_window = counters_for(again, "acme", NOW)  # memo keyed by counter id
    assert [key.policy_id for key in old_keys] == ["team"]
    assert [key.policy_id for key in new_keys] == ["team 1"]
    assert [key.window for key in new_keys] == [key.window for key in old_keys]
    assert window == same_window


@pytest.mark.parametrize(
    ("change", "field", "described"),
    [
        ({"metric": Metric.TOKENS}, "metric", "metric usd → tokens"),
        ({"scope": ScopeRef(ScopeKind.PRINCIPAL, "acme")}, "scope.kind", "scope.kind project → principal"),  # noqa: E501
        ({"interval": Interval(IntervalKind.MONTHLY)}, "interval", "interval daily → monthly"),
        ({"interval": Interval(IntervalKind.DAILY, "Europe/Paris")}, "interval", "interval daily → daily (Europe/Paris)"),  # noqa: E501
        ({"interval": Interval(IntervalKind.HOURLY)}, "interval", "interval daily → hourly"),
    ],
)  # fmt: skip
def test_every_change_of_what_counters_measure_is_a_counting_change(
    change: dict[str, Any], field: str, described: str
) -> None:
    current = policy()
    proposed = replace(current, **change)
    assert [name for name, _ in counter_changes(current, proposed)] == [field]
    assert counting_changes(current.counting, proposed.counting) == [described]


def test_rolling_duration_changes_are_counting_changes() -> None:
    week = policy(interval=Interval(IntervalKind.ROLLING, duration=timedelta(days=7)))
    day = replace(week, interval=Interval(IntervalKind.ROLLING, duration=timedelta(days=1)))
    assert counting_changes(week.counting, day.counting) == ["interval rolling 7d → rolling 1d"]


def test_limits_filters_and_the_scope_id_keep_the_counters() -> None:
    current = policy()
    for change in (
        {"hard_limit": Decimal(99), "soft_limit": Decimal(1)},
        {"filters": BudgetFilters(models=frozenset({"gpt-4o"}))},
        {"scope": ScopeRef(ScopeKind.PROJECT, "*")},
        {"hard_action": HardAction.ALERT, "alert_thresholds": (Decimal("0.9"),)},
    ):
        proposed = replace(current, **change)
        assert proposed.counting == current.counting
        assert counter_changes(current, proposed) == []


def test_policy_problems_name_each_out_of_bounds_field() -> None:
    assert policy_problems(policy()) == []
    year = Interval(IntervalKind.ROLLING, duration=timedelta(days=366))
    assert policy_problems(policy(interval=year)) == []
    bad = policy(
        interval=Interval(IntervalKind.ROLLING, duration=timedelta(days=900_000)),
        hard="1e16",
        soft="-1",
        alert_thresholds=(Decimal("0.5"), Decimal("1.5"), Decimal("1e-30")),
    )
    assert [name for name, _ in policy_problems(bad)] == [
        "interval.duration",
        "hard_limit",
        "soft_limit",
        "alert_thresholds[1]",
        "alert_thresholds[2]",
    ]


def test_live_windows_are_those_of_the_counters_a_generation_reads() -> None:
    fresh = replace(policy("team"), generation=1)
    live = live_windows((fresh,), NOW)
    keys, _ = counters_for(fresh, "acme", NOW)
    assert all(is_live(live, key.policy_id, key.window) for key in keys)
    assert not is_live(live, "team", keys[0].window)  # generation 0's: never read again


MEMO_POLICIES = (
    policy("memo-day", interval=Interval(IntervalKind.DAILY, "America/New_York")),
    policy("memo-hour", interval=Interval(IntervalKind.HOURLY, "Asia/Kolkata")),
    policy("memo-roll", interval=Interval(IntervalKind.ROLLING, duration=timedelta(hours=2))),
)


@given(
    st.lists(
        st.datetimes(min_value=datetime(2026, 3, 7), max_value=datetime(2026, 3, 10)),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from(["acme", "beta"]),
)
def test_memoised_counters_match_a_fresh_derivation(instants: list[datetime], member: str) -> None:
    """``counters_for`` answers from a memo while its buckets last: at any sequence of instants
    (across a DST change, back and forth, bucket edges included) it gives exactly the keys and
    window derived afresh from ``counter_buckets``."""
    for at in instants:
        now = at.replace(tzinfo=UTC)
        for budget in MEMO_POLICIES:
            buckets = counter_buckets(budget.interval, now)
            keys, window = counters_for(budget, member, now)
            assert keys == tuple(CounterKey(budget.id, member, bucket.key) for bucket in buckets)
            assert window == Window(buckets[0].start, buckets[-1].end)
            assert window.start <= now < window.end
