"""The latency histogram's percentile is an upper bound that holds for any set of latencies."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spendgate.domain.latency import LATENCY_EDGES_MS, latency_bucket, percentile_at_most

LATENCIES = st.lists(st.floats(0, 200_000, allow_nan=False), min_size=1, max_size=200)


def counts_of(latencies: list[float]) -> list[int]:
    counts = [0] * (len(LATENCY_EDGES_MS) + 1)
    for latency in latencies:
        counts[latency_bucket(latency)] += 1
    return counts


@given(LATENCIES, st.integers(1, 100))
def test_the_percentile_is_the_tightest_edge_that_bounds_it(
    latencies: list[float], percent: int
) -> None:
    bound = percentile_at_most(counts_of(latencies), percent)
    assert bound is not None
    exact = sorted(latencies)[math.ceil(len(latencies) * percent / 100) - 1]  # nearest rank
    assert exact <= bound  # an upper bound, never below the true value
    # ... and the tightest the buckets allow: the edge below it does not bound the percentile.
    below = [edge for edge in LATENCY_EDGES_MS if edge < bound]
    if below:
        assert exact > below[-1]


def test_edges_belong_to_their_bucket_and_the_slowest_are_unbounded() -> None:
    assert latency_bucket(50) == 0  # "at most 50 ms" includes 50
    assert latency_bucket(50.001) == 1
    assert latency_bucket(60_000.5) == len(LATENCY_EDGES_MS)
    assert percentile_at_most([0] * (len(LATENCY_EDGES_MS) + 1), 95) is None
    slowest = [0] * len(LATENCY_EDGES_MS) + [3]
    assert percentile_at_most(slowest, 95) == math.inf
    with pytest.raises(ValueError, match="percent must be in"):
        percentile_at_most(slowest, 0)
