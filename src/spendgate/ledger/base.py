"""The ledger contract shared by every backend."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

from spendgate.domain.budgets import CounterKey, CounterState
from spendgate.domain.rate_limits import RateLine, RateRefund, RateVerdict
from spendgate.domain.reservations import ReservationLine

__all__ = [
    "DEFAULT_RESERVATION_TTL",
    "AsyncReserving",
    "Ledger",
    "LedgerFailure",
    "LedgerUnavailableError",
    "LedgerUnseededError",
    "ReservationLine",
    "ReserveOutcome",
]

# A reservation neither settled nor kept alive (``extend``) within this time is released: a
# crashed request cannot hold budget. Running requests are kept alive, however long they last.
DEFAULT_RESERVATION_TTL = timedelta(minutes=10)


class LedgerFailure(StrEnum):
    """What a gateway does while its shared ledger cannot be reached."""

    CLOSED = "closed"  # refuse requests (503): no budget can be checked, none is overspent
    OPEN = "open"  # admit them without a hold, journal them, alert; counters catch up later


class LedgerUnavailableError(RuntimeError):
    """A shared ledger's backend cannot be reached (connection refused, timed out)."""


class LedgerUnseededError(LedgerUnavailableError):
    """A shared ledger's backend answers but lost its counters (a Redis restarted empty) and
    has not been seeded from the journal again: nothing can be checked against it yet."""


@dataclass(frozen=True, slots=True)
class ReserveOutcome:
    ok: bool
    refused_policy: str | None = None
    consumed: Decimal | None = None  # the refusing counter's consumption when refused
    # What the rate limits said, when any applied (refused by one: ``refused_policy`` is its
    # id and ``rate.refused`` its line).
    rate: RateVerdict | None = None


class Ledger(Protocol):
    def read(self, key: CounterKey) -> CounterState: ...

    def read_total(self, keys: Sequence[CounterKey]) -> CounterState:
        """Settled and reserved summed over ``keys`` (a policy's window buckets)."""
        ...

    def reserve(
        self,
        reservation_id: str,
        lines: Sequence[ReservationLine],
        now: datetime,
        ttl: timedelta = DEFAULT_RESERVATION_TTL,
        rates: Sequence[RateLine] = (),
    ) -> ReserveOutcome:
        """Reserve every line and take every rate line, all or nothing, in one atomic pass
        (a budget refusal is reported before a rate limit's: retrying cannot help it)."""
        ...

    def refund(self, refunds: Sequence[RateRefund], now: datetime) -> None:
        """Give rate-limit tokens reserved but not used back to their buckets."""
        ...

    def settle(self, reservation_id: str, actual: Mapping[CounterKey, int]) -> None:
        """Replace the reservation by the actual usage, in attos per counter."""
        ...

    def release(self, reservation_id: str) -> None: ...

    def extend(self, reservation_ids: Collection[str], until: datetime) -> int:
        """Keep the given reservations until at least ``until`` (the heartbeat of requests
        still running; never shortens one). Unknown ids are skipped; returns how many were
        extended. One batch per call, so a shared backend can do it in one round trip."""
        ...

    def expire(self, now: datetime) -> int: ...

    def members(self, policy_id: str, window_keys: Collection[str]) -> set[str]:
        """The members with a settled or reserved counter of ``policy_id`` in any of
        ``window_keys`` (for listings of a ``*`` budget; never on the request path), in time
        proportional to those members, not to every counter."""
        ...

    def prune(self, live: Mapping[str, str]) -> int:
        """Drop counters no policy can read any more (``live``: per policy id, its oldest
        live window key, from ``domain.budgets.live_windows``); counters with a reservation
        in flight stay. Returns how many were dropped. Periodic, off the request path (a
        backend whose counters expire by themselves may drop nothing here)."""
        ...


@runtime_checkable
class AsyncReserving(Protocol):
    """A ledger whose reserve is answered over the network (shared by several processes):
    the gateway awaits it instead of calling ``reserve``. Settling, releasing and extending
    stay synchronous calls for the caller: the ledger sends them in the background, which is
    safe for the limits (until they land, the holds they replace stay counted). Its reads
    come from a local view that may lag: ``refresh`` reads the given counters now."""

    async def refresh(self, keys: Collection[CounterKey]) -> None: ...

    async def reserve_async(
        self,
        reservation_id: str,
        lines: Sequence[ReservationLine],
        now: datetime,
        ttl: timedelta = DEFAULT_RESERVATION_TTL,
        rates: Sequence[RateLine] = (),
    ) -> ReserveOutcome: ...
