"""The token-bucket arithmetic of rate limits (``domain.rate_limits``), property-tested: a
bucket never holds more than its limit, what it admits over any stretch of time is at most the
limit plus the exact refill, ``retry_after_ms`` is exact (not a millisecond early, not one
late), refunds never take a bucket below empty, and a line that can never fit says so."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spendgate.domain.rate_limits import (
    UNIT,
    Bucket,
    RateLimit,
    RateLine,
    RateMetric,
    RateRefund,
    RateScopeKind,
    check_rates,
    drained,
    rate_lines,
    refunded,
)
from spendgate.domain.scopes import RequestScopes

PER_MINUTE = st.integers(1, 10_000)
STEPS = st.lists(st.tuples(st.integers(0, 5_000), st.integers(0, 40)), max_size=60)


def _line(per_minute: int, amount: int) -> RateLine:
    return RateLine("l", RateMetric.TOKENS, "b", per_minute, amount)


@given(per_minute=PER_MINUTE, steps=STEPS)
def test_never_over_capacity_and_never_more_than_the_refill(
    per_minute: int, steps: list[tuple[int, int]]
) -> None:
    buckets: dict[str, Bucket] = {}
    now = 1_000_000
    admitted = 0
    for step_ms, amount in steps:
        now += step_ms
        verdict = check_rates(buckets, [_line(per_minute, amount)], now)
        if verdict.refused is None:
            admitted += amount
        level = drained(buckets.get("b"), per_minute, now)
        assert level <= per_minute * UNIT
        # A full bucket at the start, then the refill (exactly per_minute per minute).
        elapsed = now - 1_000_000
        assert admitted * UNIT <= per_minute * UNIT + per_minute * elapsed


@given(per_minute=PER_MINUTE, fill=st.integers(0, 10_000), amount=st.integers(1, 10_000))
def test_retry_after_is_exact(per_minute: int, fill: int, amount: int) -> None:
    fill, amount = min(fill, per_minute), min(amount, per_minute)
    buckets: dict[str, Bucket] = {}
    check_rates(buckets, [_line(per_minute, fill)], 0)
    verdict = check_rates(dict(buckets), [_line(per_minute, amount)], 0)
    if verdict.refused is None:
        assert fill + amount <= per_minute
        return
    wait = verdict.retry_after_ms
    assert wait is not None
    assert wait > 0
    early = check_rates(dict(buckets), [_line(per_minute, amount)], wait - 1)
    assert early.refused is not None
    on_time = check_rates(dict(buckets), [_line(per_minute, amount)], wait)
    assert on_time.refused is None


@given(per_minute=PER_MINUTE, amount=st.integers(0, 10_000), back=st.integers(0, 20_000))
def test_refunds_never_go_below_empty(per_minute: int, amount: int, back: int) -> None:
    amount = min(amount, per_minute)
    buckets: dict[str, Bucket] = {}
    check_rates(buckets, [_line(per_minute, amount)], 0)
    after = refunded(buckets.get("b"), RateRefund("b", per_minute, back), 0)
    expected = max(amount - back, 0) * UNIT
    assert drained(after, per_minute, 0) == expected
    assert (after is None) == (expected == 0)


@given(per_minute=PER_MINUTE, over=st.integers(1, 1_000))
def test_a_line_over_its_whole_limit_can_never_fit(per_minute: int, over: int) -> None:
    verdict = check_rates({}, [_line(per_minute, per_minute + over)], 0)
    assert verdict.refused is not None
    assert verdict.retry_after_ms is None


def test_all_or_nothing_across_lines() -> None:
    buckets: dict[str, Bucket] = {}
    requests = RateLine("r", RateMetric.REQUESTS, "r", 10, 1)
    tokens = RateLine("t", RateMetric.TOKENS, "t", 100, 80)
    assert check_rates(buckets, [requests, tokens], 0).refused is None
    verdict = check_rates(buckets, [requests, tokens], 0)
    assert verdict.refused == tokens
    # The requests bucket did not pay for the refused request.
    assert drained(buckets["r"], 10, 0) == 1 * UNIT


def test_each_member_apart_and_the_models_filter() -> None:
    each = RateLimit("k", RateScopeKind.API_KEY, "*", requests_per_minute=1)
    mine = rate_lines([each], RequestScopes(api_key="a"), "m", 5)
    theirs = rate_lines([each], RequestScopes(api_key="b"), "m", 5)
    assert mine[0].bucket != theirs[0].bucket
    filtered = RateLimit(
        "f", RateScopeKind.MODEL, "*", tokens_per_minute=9, models=frozenset({"x"})
    )
    assert rate_lines([filtered], RequestScopes(), "m", 5) == ()
    assert rate_lines([filtered], RequestScopes(), "x", 5)[0].amount == 5
    one = RateLimit("p", RateScopeKind.PROJECT, "acme", requests_per_minute=1)
    assert rate_lines([one], RequestScopes(project="beta"), "m", 5) == ()
