"""A real Redis for the tests that need one, with a key prefix of their own.

The server comes from ``SPENDGATE_TEST_REDIS_URL`` or, by default, the local one this
project's machines start (127.0.0.1:6379). Tests never flush the server: each uses a random
prefix and deletes its keys afterwards. Without a reachable server (or redis-py) they are
skipped, saying why.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["REDIS_URL", "connect", "drop_prefix", "fresh_prefix", "prefixed"]

REDIS_URL = os.environ.get("SPENDGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def connect(url: str = REDIS_URL) -> Redis:
    """A client of the test server; skips the test when there is none."""
    try:
        from redis.asyncio import BlockingConnectionPool, Redis
    except ImportError:
        pytest.skip("Redis tests: redis-py is not installed")
    # As the gateway connects: callers beyond the pool's size wait for a connection.
    pool = BlockingConnectionPool.from_url(url, max_connections=32, socket_connect_timeout=1)
    client = Redis(connection_pool=pool)
    try:
        await client.ping()
    except Exception as error:  # whatever it is, there is no server to test on
        await client.aclose()
        pytest.skip(f"Redis tests: no server at {url} ({error.__class__.__name__}: {error})")
    return client


def fresh_prefix() -> str:
    return f"sg-test-{secrets.token_hex(6)}"


async def drop_prefix(client: Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)


@asynccontextmanager
async def prefixed(prefix: str | None = None) -> AsyncIterator[tuple[Redis, str]]:
    """A client and a key prefix of its own (``prefix``, or a fresh one); on exit the
    prefix's keys are deleted and the client closed."""
    client = await connect()
    name = prefix or fresh_prefix()
    try:
        yield client, name
    finally:
        await drop_prefix(client, name)
        await client.aclose()


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]
