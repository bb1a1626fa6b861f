"""Rate limits held across processes by the Redis ledger (skipped, saying why, without
Redis): two ``spendgate serve`` processes flooded with 200 concurrent requests through the
openai SDK admit together no more than the one bucket holds (its clock: Redis's)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import openai

from gateway_support import HELLO
from redis_support import REDIS_URL
from serve_support import RunningServe, serve_process
from spendgate.mock_upstream.runner import MockUpstreamThread

KEY = "sg-rate-limits-acme"
ENV = {"ACME_KEY": KEY}
RPM = 40


def config(mock_url: str, database: str, prefix: str) -> str:
    return f"""
providers: [{{id: alpha, kind: openai, base_url: "{mock_url}", api_key_env: ACME_KEY}}]
models: [{{id: gpt-4o-mini, provider: alpha}}]
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false}}
keys: [{{id: acme, key_env: ACME_KEY, principal: alice, project: acme}}]
rate_limits:
  - {{id: acme-rpm, scope: {{kind: project, id: acme}}, requests_per_minute: {RPM}}}
database_url: "{database}"
ledger_url: "{REDIS_URL}"
ledger_prefix: "{prefix}"
"""


def test_two_processes_share_one_bucket(tmp_path: Path, redis_prefix: str) -> None:
    with MockUpstreamThread(latency_ms=5) as mock, ExitStack() as stack:
        text = config(mock.openai_base_url, f"sqlite:///{tmp_path / 'shared.db'}", redis_prefix)
        gateways: list[RunningServe] = []
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            gateways.append(stack.enter_context(serve_process(folder, text, ENV)))

        async def flood() -> list[tuple[int, str]]:
            clients = [
                openai.AsyncOpenAI(base_url=g.url + "/v1", api_key=KEY, max_retries=0)
                for g in gateways
            ]

            async def one(index: int) -> tuple[int, str]:
                try:
                    await clients[index % 2].chat.completions.create(
                        model="gpt-4o-mini", messages=HELLO, max_tokens=8
                    )
                except openai.RateLimitError as error:
                    headers = error.response.headers
                    return int(headers["retry-after"]), headers["x-ratelimit-limit-requests"]
                return 200, str(RPM)

            try:
                return list(await asyncio.gather(*(one(i) for i in range(200))))
            finally:
                for client in clients:
                    await client.close()

        started = time.monotonic()
        results = asyncio.run(flood())
        elapsed = time.monotonic() - started
        admitted = Counter(status for status, _ in results)[200]
        assert RPM <= admitted <= RPM + int(RPM * elapsed / 60), (admitted, elapsed)
        # Every refusal tells the client to come back within the refill of one request.
        assert {wait for wait, _ in results if wait != 200} <= {1, 2}
        assert {limit for _, limit in results} == {str(RPM)}
