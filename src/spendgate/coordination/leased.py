"""A service that runs on one replica at a time: the holder of its lease."""

from __future__ import annotations

import asyncio
import logging

from spendgate.coordination.lease import Lease
from spendgate.gateway.service import Service, stop_task

__all__ = ["Leased"]

log = logging.getLogger("spendgate.lease")


class Leased:
    """Starts ``service`` when this replica takes ``lease`` and stops it when the lease is
    lost (or on shutdown, giving the lease up so another replica takes over at once). The
    lease is refreshed three times per its duration."""

    def __init__(self, service: Service, lease: Lease) -> None:
        self.service = service
        self.lease = lease
        self.running = False
        self._keeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._turn()
        self._keeper = asyncio.create_task(self._keep(), name=f"spendgate-lease-{self.lease.name}")

    async def stop(self) -> None:
        await stop_task(self._keeper)
        self._keeper = None
        if self.running:
            await self.service.stop()
            self.running = False
        await self.lease.release()

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.lease.seconds / 3)
            try:
                await self._turn()
            except Exception:  # keep holding (or waiting for) the lease whatever happens
                log.exception("lease %s: could not start or stop its jobs", self.lease.name)

    async def _turn(self) -> None:
        held = await self.lease.refresh()
        if held and not self.running:
            await self.service.start()
            self.running = True
        elif not held and self.running:
            self.running = False
            await self.service.stop()
