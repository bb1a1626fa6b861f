"""The gateway's periodic background work, never on the request path.

* **Holds** (every ``hold_interval_s``, on the event loop: O(requests in flight + open
  reservations)): the reservations of requests still running are extended by one TTL, however
  long they run (a long stream keeps its hold), then reservations past their TTL are released
  (a crashed handler's: nobody keeps them alive any more).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from spendgate.governor import Governor

__all__ = ["Housekeeping", "HousekeepingSettings"]

log = logging.getLogger("spendgate.housekeeping")


@dataclass(slots=True)
class HousekeepingSettings:
    hold_interval_s: float = 15.0  # well within the reservation TTL (10 minutes)


class Housekeeping:
    """Runs each job in its own task until ``stop``; a failing job is logged and retried at
    its next interval, never stopping the others."""

    def __init__(
        self,
        governor: Governor,
        in_flight: Callable[[], Collection[str]],
        settings: HousekeepingSettings,
    ) -> None:
        self._governor = governor
        self._in_flight = in_flight
        self._settings = settings
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._every(self._settings.hold_interval_s, self._hold)),
        ]

    async def stop(self) -> None:
        """Let a job that is running finish (a database prune is not cut in half), then stop."""
        self._stopping.set()
        await asyncio.gather(*self._tasks)

    async def _every(self, interval_s: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), interval_s)
                return
            except TimeoutError:
                pass
            try:
                await job()
            except Exception:
                log.exception("housekeeping: %s failed", job.__name__.strip("_"))

    async def _hold(self) -> None:
        now = datetime.now(UTC)
        self._governor.keep_alive(self._in_flight(), now)
        self._governor.ledger.expire(now)
