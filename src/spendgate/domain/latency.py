"""Latency percentiles from a fixed histogram.

Rollups keep sums, and a percentile is not a sum; but a histogram's counts are. Each settled
request counts in the first bucket whose upper edge its latency does not exceed, so hours,
days, projects and models add up like every other rollup column. A percentile read back is the
upper edge of the bucket that holds it: an upper bound, never a guess inside the bucket, and
shown as one ("p95 ≤ 1,500 ms").
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Final

__all__ = ["LATENCY_EDGES_MS", "latency_bucket", "percentile_at_most"]

# Upper edges in milliseconds; one more bucket holds everything slower than the last.
LATENCY_EDGES_MS: Final = (
    50, 100, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 7_500, 10_000, 20_000, 60_000,
)  # fmt: skip


def latency_bucket(latency_ms: float) -> int:
    """Index of the bucket counting ``latency_ms`` (``len(LATENCY_EDGES_MS)``: slower than
    every edge)."""
    return bisect_left(LATENCY_EDGES_MS, latency_ms)


def percentile_at_most(counts: Sequence[int], percent: int) -> float | None:
    """The upper edge of the bucket holding the ``percent`` percentile of ``counts`` (one
    count per bucket, as ``latency_bucket`` indexes them): that share of requests took at most
    this long. ``inf`` when it falls among the slowest; None when nothing was counted."""
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], not {percent}")
    total = sum(counts)
    if total == 0:
        return None
    rank = -(-total * percent // 100)  # nearest rank: the smallest at or above the share
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return float(LATENCY_EDGES_MS[index]) if index < len(LATENCY_EDGES_MS) else float("inf")
    return float("inf")
