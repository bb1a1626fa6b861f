"""Leases on a real Redis (skipped, saying why, without one): one holder at a time, renewal,
handover when the holder stops renewing, and a holder that cannot renew stops believing it
holds the lease."""

from __future__ import annotations

import asyncio
import os
import secrets

import pytest

redis_asyncio = pytest.importorskip("redis.asyncio", reason="redis-py is not installed")

from spendgate.coordination.lease import Lease  # noqa: E402

URL = os.environ.get("SPENDGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def prefix() -> str:
    return f"sg-test-{secrets.token_hex(6)}"


async def _client() -> redis_asyncio.Redis:
    client = redis_asyncio.Redis.from_url(URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except Exception as error:  # any failure means: no server to test on
        await client.aclose()
        pytest.skip(f"Redis tests: no server at {URL} ({error.__class__.__name__})")
    return client


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def test_one_holder_at_a_time_and_renewal(prefix: str) -> None:
    async def scenario() -> None:
        client = await _client()
        try:
            first = Lease(client, "jobs", holder="a", seconds=5, prefix=prefix)
            second = Lease(client, "jobs", holder="b", seconds=5, prefix=prefix)
            assert await first.refresh()
            assert first.held
            assert not await second.refresh()
            assert not second.held
            assert await first.refresh()  # renewing our own lease
            await first.release()
            assert not first.held
            assert await second.refresh()  # released: taken at once
            await first.release()  # not ours any more: nothing happens
            assert await client.get(second.key) == b"b"
        finally:
            await client.delete(f"{prefix}:lease:jobs")
            await client.aclose()

    run(scenario())


def test_a_holder_that_stops_renewing_is_replaced_after_the_expiry(prefix: str) -> None:
    async def scenario() -> None:
        client = await _client()
        try:
            dead = Lease(client, "jobs", holder="dead", seconds=0.3, prefix=prefix)
            alive = Lease(client, "jobs", holder="alive", seconds=0.3, prefix=prefix)
            assert await dead.refresh()
            assert not await alive.refresh()
            await asyncio.sleep(0.35)
            assert not dead.held  # its own clock says so too, without asking Redis
            assert await alive.refresh()
            assert not await dead.refresh()  # back from a pause: it lost the lease
        finally:
            await client.delete(f"{prefix}:lease:jobs")
            await client.aclose()

    run(scenario())


def test_many_contenders_one_winner(prefix: str) -> None:
    async def scenario() -> None:
        client = await _client()
        try:
            leases = [Lease(client, "jobs", seconds=5, prefix=prefix) for _ in range(20)]
            won = await asyncio.gather(*(lease.refresh() for lease in leases))
            assert sum(won) == 1
        finally:
            await client.delete(f"{prefix}:lease:jobs")
            await client.aclose()

    run(scenario())


def test_an_unreachable_redis_means_not_held(prefix: str) -> None:
    async def scenario() -> None:
        client = redis_asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
        lease = Lease(client, "jobs", seconds=5, prefix=prefix)
        assert not await lease.refresh()
        assert not lease.held
        await client.aclose()

    run(scenario())
