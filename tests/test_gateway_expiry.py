"""Reservations of requests that never settle are released by the gateway's expiry sweep."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendgate.config import load_config
from spendgate.domain.budgets import CounterKey
from spendgate.domain.reservations import ReservationLine
from spendgate.gateway.compose import create_gateway


def test_lifespan_sweeps_expired_reservations() -> None:
    gateway = create_gateway(load_config(None), {})
    gateway.housekeeping.hold_interval_s = 0.01
    key = CounterKey("p", "m", "w")
    line = ReservationLine.of("p", (key,), amount=Decimal(1))
    gateway.governor.ledger.reserve(
        "stuck", [line], datetime.now(UTC) - timedelta(hours=1), ttl=timedelta(seconds=1)
    )

    async def lifespan() -> None:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        outbox: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            outbox.append(message)

        await inbox.put({"type": "lifespan.startup"})
        task = asyncio.create_task(gateway({"type": "lifespan"}, inbox.get, send))
        for _ in range(500):  # startup collects garbage first: poll rather than guess
            if gateway.governor.ledger.read(key).reserved == 0:
                break
            await asyncio.sleep(0.01)
        await inbox.put({"type": "lifespan.shutdown"})
        await task
        assert [m["type"] for m in outbox] == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]

    asyncio.run(lifespan())
    assert gateway.governor.ledger.read(key).reserved == 0
