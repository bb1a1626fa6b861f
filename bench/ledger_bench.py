"""What the shared ledger adds to a request: the awaited reservation, in memory vs on Redis.

Run: ``.venv/bin/python bench/ledger_bench.py [--requests 5000]`` (needs a Redis at
``SPENDGATE_BENCH_REDIS_URL``, default ``redis://127.0.0.1:6379/0``; it uses its own key
prefix and deletes its keys afterwards).

For 5 and for 20 applicable budget policies, plans requests on a real ``Governor`` and times
``reserve_async`` (what the gateway awaits before calling the provider) and ``settle`` (sent in
the background on Redis), one request at a time (unloaded latency), then with 64 requests in
flight (throughput of one event loop). Both modes run in the same process, one after the
other, on the same requests; the table gives medians, p99 and the difference.
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

from spendgate.config import parse_config
from spendgate.domain.pricing import Usage
from spendgate.domain.scopes import RequestScopes
from spendgate.governor import Governor
from spendgate.ledger.shared import SharedLedger

URL = os.environ.get("SPENDGATE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def config_text(policies: int) -> str:
    # Half calendar windows, half rolling ones (whose buckets a reserve reads one by one).
    intervals = ("{kind: rolling, duration: 1h}", "daily")
    budgets = "\n".join(
        f"  - {{id: b{i}, scope: {{kind: project, id: acme}}, metric: tokens, "
        f"interval: {intervals[i % 2]}, hard_limit: 1000000000000}}"
        for i in range(policies)
    )
    return f"""
providers: [{{id: alpha, kind: mock}}]
models: [{{id: gpt-4o-mini, provider: alpha}}]
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false}}
budgets:
{budgets}
"""


BODY = {"model": "gpt-4o-mini", "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello"}]}  # fmt: skip
SCOPES = RequestScopes(project="acme", principal="alice", api_key="k")


async def one(governor: Governor) -> float:
    decision = governor.plan(BODY, SCOPES, datetime.now(UTC))
    started = time.perf_counter()
    outcome = await governor.reserve_async(decision)
    elapsed = time.perf_counter() - started
    assert outcome.ok
    governor.settle(decision, Usage(input_tokens=10, output_tokens=20), latency_ms=1.0)
    return elapsed


async def measure(governor: Governor, requests: int) -> tuple[list[float], float]:
    for _ in range(200):  # warm-up
        await one(governor)
    times = [await one(governor) for _ in range(requests)]
    started = time.perf_counter()
    in_flight = asyncio.Semaphore(64)

    async def limited() -> None:
        async with in_flight:
            await one(governor)

    await asyncio.gather(*(limited() for _ in range(requests)))
    rate = requests / (time.perf_counter() - started)
    return times, rate


async def run(policies: int, requests: int) -> list[tuple[str, list[float], float]]:
    from redis.asyncio import BlockingConnectionPool, Redis

    from spendgate.ledger.redis import RedisLedger

    config = parse_config(config_text(policies), "bench.yaml")
    memory = Governor.from_config(config)
    results = [("memory", *await measure(memory, requests))]
    prefix = f"sg-bench-{secrets.token_hex(4)}"
    client = Redis(connection_pool=BlockingConnectionPool.from_url(URL, max_connections=64))
    shared = SharedLedger(RedisLedger(client, prefix=prefix))
    redis_governor = Governor.from_config(config, ledger=shared)
    shared.windows = redis_governor.current_windows
    await shared.start()
    try:
        results.append(("redis", *await measure(redis_governor, requests)))
    finally:
        await shared.stop()
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    return results


def p99(values: Sequence[float]) -> float:
    return sorted(values)[int(len(values) * 0.99) - 1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5_000)
    args = parser.parse_args(argv)
    print(
        f"{'policies':>8} {'ledger':>7} {'reserve p50':>12} {'p99':>9} {'req/s, 64 in flight':>21}"
    )
    for policies in (5, 20):
        rows = asyncio.run(run(policies, args.requests))
        for name, times, rate in rows:
            print(
                f"{policies:>8} {name:>7} {statistics.median(times) * 1e6:>9.0f} µs "
                f"{p99(times) * 1e6:>6.0f} µs {rate:>21,.0f}"
            )
        (_, base, _), (_, shared, _) = rows
        added = (statistics.median(shared) - statistics.median(base)) * 1e3
        print(f"{'':>8} {'added':>7} {added:>9.3f} ms (p50)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
