"""One reservation and its settlement on the Redis ledger over loopback, vs the in-memory one.

Run: ``.venv/bin/python bench/redis_ledger_bench.py [--pairs 3000]`` (needs a Redis at
``SPENDGATE_BENCH_REDIS_URL``, default ``redis://127.0.0.1:6379/0``; it uses a key prefix of
its own and deletes its keys afterwards).

A request with 5 and with 20 policy lines, half of them calendar windows (one counter) and
half 7-day rolling windows (25 bucket counters each, as ``domain.windows`` lays them out),
USD amounts with 18 decimal places, every line limited. Each pair is
``reserve`` + ``settle``, one at a time (unloaded latency: what a request waits for the
reservation, plus the settlement the gateway sends in the background), both ledgers in the
same run on the same requests; then pairs/s with 64 pairs in flight on one event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from spendgate.domain.amounts import to_atto
from spendgate.domain.budgets import CounterKey
from spendgate.domain.reservations import ReservationLine
from spendgate.ledger.memory import MemoryLedger
from spendgate.ledger.redis import RedisLedger

URL = os.environ.get("SPENDGATE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
ROLLING_BUCKETS = 25
LIMIT = Decimal(10**12)


def request(policies: int) -> tuple[list[ReservationLine], dict[CounterKey, int]]:
    """The lines to reserve and the actual usage to settle (in attos) for one request."""
    lines: list[ReservationLine] = []
    actual: dict[CounterKey, int] = {}
    for n in range(policies):
        policy = f"b{n}"
        if n % 2:
            keys: tuple[CounterKey, ...] = (CounterKey(policy, "acme", "2027-03-01"),)
        else:
            keys = tuple(
                CounterKey(policy, "acme", f"r:{hour}")
                for hour in range(1000 - ROLLING_BUCKETS + 1, 1001)
            )
        lines.append(ReservationLine.of(policy, keys, Decimal("0.012345678901234567"), LIMIT))
        actual[keys[-1]] = to_atto(Decimal("0.001234567890123456"))
    return lines, actual


def p99(values: Sequence[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.99) - 1)]


def time_memory(policies: int, pairs: int) -> tuple[list[float], list[float]]:
    ledger = MemoryLedger()
    lines, actual = request(policies)
    reserves: list[float] = []
    totals: list[float] = []
    for n in range(pairs + 200):
        started = time.perf_counter()
        assert ledger.reserve(f"m{n}", lines, NOW).ok
        reserved = time.perf_counter()
        ledger.settle(f"m{n}", actual)
        done = time.perf_counter()
        if n >= 200:  # warm-up
            reserves.append(reserved - started)
            totals.append(done - started)
    return reserves, totals


async def time_redis(policies: int, pairs: int) -> tuple[list[float], list[float], float]:
    from redis.asyncio import BlockingConnectionPool, Redis

    client = Redis(connection_pool=BlockingConnectionPool.from_url(URL, max_connections=64))
    prefix = f"sg-bench-{secrets.token_hex(4)}"
    ledger = RedisLedger(client, prefix=prefix)
    lines, actual = request(policies)
    reserves: list[float] = []
    totals: list[float] = []
    try:
        for n in range(pairs + 200):
            started = time.perf_counter()
            assert (await ledger.reserve(f"s{n}", lines, NOW)).ok
            reserved = time.perf_counter()
            await ledger.settle(f"s{n}", actual)
            done = time.perf_counter()
            if n >= 200:
                reserves.append(reserved - started)
                totals.append(done - started)
        in_flight = asyncio.Semaphore(64)

        async def pair(n: int) -> None:
            async with in_flight:
                assert (await ledger.reserve(f"c{n}", lines, NOW)).ok
                await ledger.settle(f"c{n}", actual)

        started = time.perf_counter()
        await asyncio.gather(*(pair(n) for n in range(pairs)))
        rate = pairs / (time.perf_counter() - started)
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
        await client.aclose()
    return reserves, totals, rate


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3_000)
    args = parser.parse_args(argv)
    header = (
        f"{'lines':>5} {'ledger':>7} {'reserve p50':>12} {'pair p50':>10} {'pair p99':>10} "
        f"{'pairs/s, 64 in flight':>22}"
    )
    print(header)
    for policies in (5, 20):
        memory_reserves, memory_totals = time_memory(policies, args.pairs)
        redis_reserves, redis_totals, rate = asyncio.run(time_redis(policies, args.pairs))
        for name, reserves, totals, shown in (
            ("memory", memory_reserves, memory_totals, "-"),
            ("redis", redis_reserves, redis_totals, f"{rate:,.0f}"),
        ):
            print(
                f"{policies:>5} {name:>7} {statistics.median(reserves) * 1e6:>9.0f} µs "
                f"{statistics.median(totals) * 1e6:>7.0f} µs {p99(totals) * 1e6:>7.0f} µs "
                f"{shown:>22}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
