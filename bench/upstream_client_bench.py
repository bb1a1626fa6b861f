"""Upstream HTTP client A/B: CPU per proxied call of each async client, against the bench's
nginx (a canned chat completion and a canned 30-event SSE stream), the way the gateway uses it
(one pooled client, POST of the same JSON body, the whole answer read, a stream read chunk by
chunk). The clients run in this process on core 0, on uvloop, nginx on core 1; CPU is the whole
process's (the client's own threads count), divided by the calls made. Interleaved rounds,
medians.

    .venv/bin/pip install pyreqwest   # not a dependency of spendgate: measured, not adopted
    .venv/bin/python bench/upstream_client_bench.py --rounds 3 --calls 3000
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import CHAT_BODY, GATEWAY_CORE, start_nginx

BODY = json.dumps(CHAT_BODY).encode()
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-upstream-dummy"}

Call = Callable[[str], Awaitable[int]]


async def aiohttp_client() -> tuple[Call, Call, Callable[[], Awaitable[None]]]:
    """aiohttp as ``providers/session.py`` configures it."""
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100, limit_per_host=0, ttl_dns_cache=300),
        timeout=aiohttp.ClientTimeout(total=None),
        skip_auto_headers=("User-Agent",),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    timeout = aiohttp.ClientTimeout(total=60, sock_connect=10)
    stream_timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)

    async def json_call(url: str) -> int:
        async with session.post(url, data=BODY, headers=HEADERS, timeout=timeout) as response:
            return len(await response.read())

    async def sse_call(url: str) -> int:
        received = 0
        async with session.post(
            url, data=BODY, headers=HEADERS, timeout=stream_timeout
        ) as response:
            while chunk := await response.content.readany():
                received += len(chunk)
        return received

    return json_call, sse_call, session.close


async def pyreqwest_client() -> tuple[Call, Call, Callable[[], Awaitable[None]]]:
    """pyreqwest as a trial adoption configured it (see bench/README.md, "Upstream client"):
    a client per provider timeout, reqwest's idle-read timeout on the client."""
    from pyreqwest.client import ClientBuilder

    client = (
        ClientBuilder()
        .connect_timeout(timedelta(seconds=10))
        .read_timeout(timedelta(seconds=60))
        .follow_redirects(False)
        .max_connections(100)
        .build()
    )

    async def json_call(url: str) -> int:
        request = (
            client.post(url)
            .headers(HEADERS)
            .body_bytes(BODY)
            .timeout(timedelta(seconds=60))
            .build()
        )
        response = await request.send()
        return len(await response.bytes())

    async def sse_call(url: str) -> int:
        received = 0
        request = client.post(url).headers(HEADERS).body_bytes(BODY).build_streamed()
        async with request as response:
            while (chunk := await response.body_reader.read_chunk()) is not None:
                received += len(chunk)
        return received

    return json_call, sse_call, client.close


CLIENTS = {"aiohttp": aiohttp_client, "pyreqwest": pyreqwest_client}


async def run(call: Call, url: str, calls: int, concurrency: int) -> float:
    """CPU µs per call, the whole process."""
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            if await call(url) <= 0:
                raise RuntimeError(f"empty answer from {url}")

    for _ in range(50):  # warm the pool
        await call(url)
    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - cpu) / calls * 1e6


async def measure(name: str, port: int, calls: int) -> dict[str, float]:
    json_call, sse_call, close = await CLIENTS[name]()
    base = f"http://127.0.0.1:{port}"
    try:
        return {
            "json c1": await run(json_call, f"{base}/v1/chat/completions", calls, 1),
            "json c16": await run(json_call, f"{base}/v1/chat/completions", calls, 16),
            "sse c1": await run(sse_call, f"{base}/sse/v1/chat/completions", calls, 1),
            "sse c16": await run(sse_call, f"{base}/sse/v1/chat/completions", calls, 16),
        }
    finally:
        await close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    names = [name for name in CLIENTS if importlib.util.find_spec(name) is not None]
    with tempfile.TemporaryDirectory() as workdir:
        nginx = start_nginx(Path(workdir), nice=0)
        os.sched_setaffinity(0, {GATEWAY_CORE})
        try:
            results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
            for _ in range(args.rounds):
                for name in names:
                    results[name].append(uvloop.run(measure(name, nginx.port, args.calls)))
        finally:
            nginx.stop()
    cases = list(next(iter(results.values()))[0])
    print(f"CPU µs per call (median of {args.rounds} rounds, {args.calls} calls each)")
    print(f"{'client':<12}" + "".join(f"{case:>11}" for case in cases))
    for name, rounds in results.items():
        medians: dict[str, Any] = {
            case: statistics.median(r[case] for r in rounds) for case in cases
        }
        print(f"{name:<12}" + "".join(f"{medians[case]:>11.0f}" for case in cases))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
