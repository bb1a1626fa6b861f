"""How long one ``Governor.plan`` call takes with 5 and with 100 applicable policies.

Run: ``make bench`` or ``.venv/bin/python bench/plan_bench.py [--calls N]``. The governor is
built from the built-in demo config; the extra policies all apply to the request (mixed
metrics, calendar and rolling windows, timezones) and their counters hold some usage, so
every policy is fully evaluated. Reports median and p99 per call in microseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import cycle

from spendgate import (
    BudgetPolicy,
    Governor,
    Interval,
    IntervalKind,
    Metric,
    RequestScopes,
    ScopeKind,
    ScopeRef,
    Usage,
    load_config,
)

SCOPES = RequestScopes(
    project="acme", principal="alice", api_key="demo-alice", agent="a1", session="s1"
)
BODY = {
    "model": "gpt-4o",
    "max_tokens": 512,
    "messages": [
        {"role": "system", "content": "You are a helpful assistant for an online shop."},
        {"role": "user", "content": "Where is my order #1234? It was due yesterday and I " * 4},
    ],
}
INTERVALS = [
    Interval(IntervalKind.DAILY),
    Interval(IntervalKind.MONTHLY, "Europe/Prague"),
    Interval(IntervalKind.HOURLY, "America/New_York"),
    Interval(IntervalKind.WEEKLY),
    Interval(IntervalKind.ROLLING, duration=timedelta(days=7)),
]
KINDS = [
    ScopeKind.PROJECT,
    ScopeKind.PRINCIPAL,
    ScopeKind.API_KEY,
    ScopeKind.SESSION,
    ScopeKind.GLOBAL,
]
METRICS = [Metric.USD, Metric.TOKENS, Metric.REQUESTS]


def policies(count: int) -> tuple[BudgetPolicy, ...]:
    kinds, intervals, metrics = cycle(KINDS), cycle(INTERVALS), cycle(METRICS)
    result = []
    for index in range(count):
        kind = next(kinds)
        result.append(
            BudgetPolicy(
                id=f"bench-{index}",
                scope=ScopeRef(kind, "*" if kind is not ScopeKind.GLOBAL else "global"),
                metric=next(metrics),
                interval=next(intervals),
                hard_limit=Decimal(10**9),
                soft_limit=Decimal(10**8),
            )
        )
    return tuple(result)


def governor_with(count: int) -> Governor:
    base = Governor.from_config(load_config(None))
    governor = Governor(replace(base.state, policies=policies(count)))
    now = datetime.now(UTC)
    for _ in range(20):  # put some usage in every counter
        decision = governor.plan(BODY, SCOPES, now)
        governor.reserve(decision)
        governor.settle(decision, Usage(input_tokens=120, output_tokens=80))
    return governor


def measure(governor: Governor, calls: int) -> list[float]:
    now = datetime.now(UTC)
    timings = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        governor.plan(BODY, SCOPES, now)
        timings.append((time.perf_counter_ns() - start) / 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    print(f"Governor.plan, {args.calls} calls each (µs per call)")
    print(f"{'policies':>9} {'applied':>8} {'median':>8} {'p90':>8} {'p99':>8}")
    for count in (5, 100):
        governor = governor_with(count)
        applied = len(governor.plan(BODY, SCOPES).budget_evaluations)
        measure(governor, 500)  # warm up
        timings = sorted(measure(governor, args.calls))
        p90 = timings[int(len(timings) * 0.90)]
        p99 = timings[int(len(timings) * 0.99)]
        print(f"{count:>9} {applied:>8} {statistics.median(timings):>8.1f} {p90:>8.1f} {p99:>8.1f}")


if __name__ == "__main__":
    main()
