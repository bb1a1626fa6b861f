"""What a full journal queue does with one more item, whichever writer owns the queue.

A full queue (``max_pending`` items waiting: the database stalled or is too slow) must neither
block the caller nor grow memory without bound. Counter increments are never dropped: they are
merged per counter (memory bounded by the number of live counters) and committed first when
the writer catches up, because the ledger is rebuilt from them at start (lost increments would
let a budget overspend after a restart). Decision records (audit trail, rollups) are dropped,
counted and logged at ERROR at most every ``_DROP_LOG_INTERVAL_S``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from decimal import Decimal

from spendgate.domain.budgets import CounterKey

__all__ = ["Overflow"]

log = logging.getLogger("spendgate.journal")

_DROP_LOG_INTERVAL_S = 10.0


class Overflow:
    """Held increments and dropped records of one writer's queue (any thread)."""

    __slots__ = (
        "_held",
        "_last_drop",
        "_lock",
        "_max_pending",
        "_next_drop_log",
        "_unlogged",
        "dropped",
    )

    def __init__(self, max_pending: int) -> None:
        self._max_pending = max_pending
        self._held: dict[CounterKey, Decimal] = {}
        self._lock = threading.Lock()
        self.dropped = 0
        self._unlogged = 0
        self._last_drop: float | None = None  # monotonic
        self._next_drop_log = 0.0

    def hold(self, increments: Mapping[CounterKey, Decimal]) -> None:
        """Merge increments that found the queue full; they go with the writer's next batch."""
        with self._lock:
            held = self._held
            for key, amount in increments.items():
                held[key] = held.get(key, Decimal(0)) + amount

    def take_held(self) -> dict[CounterKey, Decimal]:
        """The increments held so far (empty if none), now the caller's to commit."""
        if not self._held:
            return {}
        with self._lock:
            held, self._held = self._held, {}
        return held

    @property
    def held_counters(self) -> int:
        return len(self._held)

    def drop(self, description: str, last_error: str | None) -> None:
        """Count a decision record dropped for want of room; log at most one line per burst."""
        now = time.monotonic()
        self.dropped += 1
        self._unlogged += 1
        self._last_drop = now
        if now >= self._next_drop_log:
            self._next_drop_log = now + _DROP_LOG_INTERVAL_S
            count, self._unlogged = self._unlogged, 0
            log.error(
                "journal queue is full (%d records waiting for the database): dropped %d "
                "journal record(s) since the last report, %d in all (last: %s); budgets are "
                "unaffected, usage views and the audit trail miss them. Last database "
                "error: %s",
                self._max_pending,
                count,
                self.dropped,
                description,
                last_error,
            )

    def seconds_since_drop(self) -> float | None:
        last = self._last_drop
        return None if last is None else time.monotonic() - last
