"""The gateway's periodic background work, never on the request path.

* **Holds** (every ``hold_interval_s``, on the event loop: O(requests in flight + open
  reservations)): the reservations of requests still running are extended by one TTL, however
  long they run (a long stream keeps its hold), then reservations past their TTL are released
  (a crashed handler's: nobody keeps them alive any more).
* **Ledger windows** (every ``prune_interval_s``, in a worker thread): counters of windows no
  budget reads any more are dropped from memory, so it does not grow with history.
* **Retention** (every ``retention_interval_s``, in a worker thread, with a journal): raw
  decisions and finished webhook deliveries older than ``keep_decisions`` are deleted (the
  hourly rollups stay; alerts are kept), and so are
  stored counters of windows older than every budget's oldest live window.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from spendgate.domain.budgets import live_windows
from spendgate.governor import Governor
from spendgate.store.journal import Journal

__all__ = ["Housekeeping", "HousekeepingSettings"]

log = logging.getLogger("spendgate.housekeeping")


@dataclass(slots=True)
class HousekeepingSettings:
    hold_interval_s: float = 15.0  # well within the reservation TTL (10 minutes)
    prune_interval_s: float = 60.0
    retention_interval_s: float = 3600.0
    approvals_interval_s: float = 30.0  # pending approval requests expire within this
    keep_decisions: timedelta | None = timedelta(days=30)  # None: never delete decisions


class Housekeeping:
    """Runs each job in its own task until ``stop``; a failing job is logged and retried at
    its next interval, never stopping the others."""

    def __init__(
        self,
        governor: Governor,
        in_flight: Callable[[], Collection[str]],
        settings: HousekeepingSettings,
        expire_approvals: Callable[[], int] | None = None,
    ) -> None:
        self._governor = governor
        self._in_flight = in_flight
        self._settings = settings
        self._expire_approvals = expire_approvals
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        settings = self._settings
        jobs = [
            (settings.hold_interval_s, self._hold),
            (settings.prune_interval_s, self._prune_ledger),
        ]
        if self._governor.journal is not None:
            jobs.append((settings.retention_interval_s, self._retention))
        if self._expire_approvals is not None:
            jobs.append((settings.approvals_interval_s, self._approvals))
        self._tasks = [asyncio.create_task(self._every(*job)) for job in jobs]

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

    async def _prune_ledger(self) -> None:
        live = live_windows(self._governor.state.policies, datetime.now(UTC))
        dropped = await asyncio.to_thread(self._governor.ledger.prune, live)
        if dropped:
            log.info("ledger: dropped %d counter(s) of windows no budget reads any more", dropped)

    async def _approvals(self) -> None:
        assert self._expire_approvals is not None  # scheduled only with one
        expired = await asyncio.to_thread(self._expire_approvals)
        if expired:
            log.info("approvals: %d request(s) or grant(s) expired", expired)

    async def _retention(self) -> None:
        journal = self._governor.journal
        assert journal is not None  # scheduled only with a journal
        now = datetime.now(UTC)
        keep = self._settings.keep_decisions
        before = None if keep is None else now - keep
        # Stored counters go by one key for all budgets: those of a deleted budget's live
        # window stay, so its id cannot be reused with that window's spend in it.
        oldest = min(live_windows(self._governor.state.policies, now).values(), default=None)
        await asyncio.to_thread(_prune_journal, journal, before, oldest)


def _prune_journal(journal: Journal, before: datetime | None, oldest: str | None) -> None:
    decisions = journal.prune_decisions(before) if before is not None else 0
    deliveries = journal.outbox.prune(before) if before is not None else 0
    counters = journal.prune_counters(oldest) if oldest is not None else 0
    log.info(
        "retention: deleted %d decision(s) and %d finished webhook delivery(ies) from before "
        "%s, and %d counter(s) of windows before %s",
        decisions,
        deliveries,
        before.isoformat(timespec="seconds") if before is not None else "(kept forever)",
        counters,
        oldest or "(no budgets)",
    )
