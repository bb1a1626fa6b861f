"""Request outcomes of every replica, brought to the one replica that runs the alert detector.

The detector runs on the replica holding the alerts lease, but every replica serves requests:
cost spikes, unpriced models, refusals and spend rates must be seen whoever served them. On
each replica the relay is the governor's observer. The request path only appends to a bounded
queue (no I/O); every ``interval`` a background task sends what queued up to a Redis list in
one call, trimmed to the newest ``max_queued``. The detector's replica takes the list's items
before each pass (``pull``). Outcomes outlive a change of lease holder (the list stays); what
a replica queued and had not sent when it died is lost with it, as the detector's own queue
would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from decimal import Decimal
from typing import TYPE_CHECKING

from spendgate.alerting.outcomes import RequestOutcome, refused_outcome, settled_outcome
from spendgate.domain.routing import RoutingDecision
from spendgate.gateway.service import stop_task

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["OutcomeRelay"]

log = logging.getLogger("spendgate.alerts")

MAX_QUEUED = 50_000
_PULL_BATCH = 1_000


class OutcomeRelay:
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        interval: float = 0.25,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._redis = redis
        self.key = f"{prefix}:alerts:outcomes"
        self.interval = interval
        self.max_queued = max_queued
        self._queue: deque[RequestOutcome] = deque(maxlen=max_queued)
        self.dropped = 0  # outcomes lost: the queue or the list was full, or Redis away
        self._task: asyncio.Task[None] | None = None

    # -- the request path (the governor's observer): record and return -------------------------

    def settled(self, decision: RoutingDecision, cost: Decimal | None, unpriced: bool) -> None:
        self._push(settled_outcome(decision, cost, unpriced))

    def refused(self, decision: RoutingDecision, policy_id: str | None) -> None:
        self._push(refused_outcome(decision, policy_id))

    def _push(self, outcome: RequestOutcome) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(outcome)

    # -- background ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._send_every_interval(), name="spendgate-relay")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        with contextlib.suppress(Exception):  # the last ones, if Redis answers
            await self.send()

    async def _send_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.send()
            except Exception as error:  # Redis away: keep queueing (bounded), try again
                log.warning("alerts: could not relay request outcomes: %s", error)

    async def send(self) -> int:
        """Send what queued up (one pipeline); returns how many were sent."""
        if not self._queue:
            return 0
        batch, self._queue = self._queue, deque(maxlen=self.max_queued)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.rpush(self.key, *(outcome.encode() for outcome in batch))
                pipe.ltrim(self.key, -self.max_queued, -1)
                length, _ = await pipe.execute()
        except BaseException:
            # Not sent: back in front of what queued meanwhile (the newest kept if too many).
            batch.extend(self._queue)
            self.dropped += max(0, len(batch) - self.max_queued)
            self._queue = deque(batch, maxlen=self.max_queued)
            raise
        self.dropped += max(0, int(length) - self.max_queued)
        return len(batch)

    # -- the detector's replica ------------------------------------------------------------------

    async def pull(self) -> list[RequestOutcome]:
        """Take every relayed outcome (of all replicas, this one's included)."""
        await self.send()  # this replica's own first: nothing waits an interval here
        outcomes: list[RequestOutcome] = []
        while True:
            items: list[bytes | str] | None = await self._redis.lpop(  # type: ignore[assignment]
                self.key, _PULL_BATCH
            )
            if not items:
                return outcomes
            for item in items:
                try:
                    outcomes.append(RequestOutcome.decode(item))
                except (ValueError, TypeError):  # not ours (another version): skip it
                    self.dropped += 1
            if len(items) < _PULL_BATCH:
                return outcomes
