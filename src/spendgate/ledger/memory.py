"""In-process ledger. Operations are synchronous and never await, so under asyncio each one is
atomic: N concurrent requests cannot all pass a limit (check and increment happen together).
A lock makes the same hold for threaded callers of the library API (uncontended: ~50 ns).

Counters are also indexed by (policy, window) → members when they are created, so listing a
window's members and pruning ended windows visit only what they need, never every counter
under the lock the request path takes.

Amounts are integer attos (``domain.amounts``). ``version`` counts the changes to the counters:
a reservation whose lines carry the sums planning read at the version that is still current
(nothing reserved, settled, released or expired since) reuses them instead of reading every
window bucket again: counters are read once per request."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import repeat

from spendgate.domain.amounts import from_atto, to_atto
from spendgate.domain.budgets import CounterKey, CounterState, is_live, new_tuple
from spendgate.domain.rate_limits import (
    Bucket,
    RateLine,
    RateRefund,
    check_rates,
    epoch_ms,
    refunded,
)
from spendgate.domain.reservations import ReservationLine
from spendgate.ledger.base import DEFAULT_RESERVATION_TTL, ReserveOutcome

__all__ = ["MemoryLedger"]

_VERSIONS = itertools.count()
# Counters dropped per lock acquisition by ``prune``: requests never wait behind a big prune.
_PRUNE_BATCH = 1000


@dataclass(slots=True)
class _Reservation:
    amounts: dict[CounterKey, int]
    expires_at: datetime


class MemoryLedger:
    """Counters held in memory; rebuilt from the journal's settled counters on start."""

    def __init__(self, settled: Mapping[CounterKey, Decimal] | None = None) -> None:
        self._settled: dict[CounterKey, int] = {
            key: to_atto(amount) for key, amount in (settled or {}).items()
        }
        self._reserved: dict[CounterKey, int] = {}
        # Renewed at the end of every change to the counters (under the lock): a sum read
        # after ``version`` was ``v`` is still exact while ``version`` is ``v``. Drawn from
        # one count for every ledger of the process, so no two ledgers ever share a version.
        self.version = next(_VERSIONS)
        self._reservations: dict[str, _Reservation] = {}
        # policy id → window key → members with a settled or reserved counter there.
        self._members: dict[str, dict[str, set[str]]] = {}
        self._buckets: dict[str, Bucket] = {}  # rate limits' buckets, by key
        for key in self._settled:
            self._index(key)
        self._lock = threading.Lock()

    def read(self, key: CounterKey) -> CounterState:
        return CounterState(self._settled.get(key, 0), self._reserved.get(key, 0))

    def read_total(self, keys: Sequence[CounterKey]) -> CounterState:
        settled, reserved = self._settled, self._reserved
        if len(keys) == 1:
            key = keys[0]
            return new_tuple(CounterState, (settled.get(key, 0), reserved.get(key, 0)))
        # map() over dict.get keeps the loop in C: rolling windows read ~25 buckets.
        count = len(keys)
        total_settled = sum(map(settled.get, keys, repeat(0, count)))
        total_reserved = sum(map(reserved.get, keys, repeat(0, count))) if reserved else 0
        return new_tuple(CounterState, (total_settled, total_reserved))

    def reserve(
        self,
        reservation_id: str,
        lines: Sequence[ReservationLine],
        now: datetime,
        ttl: timedelta = DEFAULT_RESERVATION_TTL,
        rates: Sequence[RateLine] = (),
        *,
        read_at: int | None = None,
    ) -> ReserveOutcome:
        """``read_at``: the ``version`` before planning read the ``consumed_atto`` the lines
        carry; while it is current, those sums are reused, else the counters are read."""
        with self._lock:
            return self._reserve(reservation_id, lines, now, now + ttl, rates, read_at)

    def _reserve(
        self,
        reservation_id: str,
        lines: Sequence[ReservationLine],
        now: datetime,
        expires_at: datetime,
        rates: Sequence[RateLine],
        read_at: int | None,
    ) -> ReserveOutcome:
        if reservation_id in self._reservations:
            raise ValueError(f"reservation {reservation_id} already exists")
        settled, reserved = self._settled, self._reserved
        current = read_at is not None and read_at == self.version
        for line in lines:
            limit = line.limit_atto
            if limit is None:
                continue
            consumed = line.consumed_atto if current else None
            if consumed is None:
                keys = line.keys
                if len(keys) == 1:
                    key = keys[0]
                    consumed = settled.get(key, 0) + reserved.get(key, 0)
                else:  # a rolling window's buckets: sum in C, as read_total does
                    count = len(keys)
                    consumed = sum(map(settled.get, keys, repeat(0, count))) + sum(
                        map(reserved.get, keys, repeat(0, count))
                    )
            if consumed + line.amount_atto > limit:
                return ReserveOutcome(False, line.policy_id, from_atto(consumed))
        verdict = None
        if rates:  # checked last, taken first: nothing can refuse the holds after them
            verdict = check_rates(self._buckets, rates, epoch_ms(now))
            if verdict.refused is not None:
                return ReserveOutcome(False, verdict.refused.limit_id, rate=verdict)
        amounts: dict[CounterKey, int] = {}
        for line in lines:
            key = line.keys[-1]
            amount = line.amount_atto
            amounts[key] = amounts.get(key, 0) + amount
            previous = reserved.get(key)
            if previous is None:
                reserved[key] = amount
                if key not in settled:
                    self._index(key)
            else:
                reserved[key] = previous + amount
        self._reservations[reservation_id] = _Reservation(amounts, expires_at)
        self.version = next(_VERSIONS)
        return ReserveOutcome(True, rate=verdict)

    def refund(self, refunds: Sequence[RateRefund], now: datetime) -> None:
        at = epoch_ms(now)
        with self._lock:
            buckets = self._buckets
            for refund in refunds:
                bucket = refunded(buckets.get(refund.bucket), refund, at)
                if bucket is None:
                    buckets.pop(refund.bucket, None)
                else:
                    buckets[refund.bucket] = bucket

    def settle(self, reservation_id: str, actual: Mapping[CounterKey, int]) -> None:
        """Release the reservation and add the actual usage in attos (even if the reservation
        expired: usage that really happened is always counted)."""
        with self._lock:
            self._release(reservation_id)
            settled = self._settled
            for key, amount in actual.items():
                previous = settled.get(key)
                if previous is None:
                    settled[key] = amount
                    self._index(key)
                else:
                    settled[key] = previous + amount
            self.version = next(_VERSIONS)

    def release(self, reservation_id: str) -> None:
        with self._lock:
            self._release(reservation_id)
            self.version = next(_VERSIONS)

    def _release(self, reservation_id: str) -> None:
        reservation = self._reservations.pop(reservation_id, None)
        if reservation is None:
            return
        for key, amount in reservation.amounts.items():
            # .get: zero holds (a free model's cost) leave nothing to subtract from once an
            # earlier zero hold on the key was released (found by the Redis ledger's test).
            remaining = self._reserved.get(key, 0) - amount
            if remaining:
                self._reserved[key] = remaining
            else:
                self._reserved.pop(key, None)
                if key not in self._settled:
                    self._unindex(key)

    def extend(self, reservation_ids: Collection[str], until: datetime) -> int:
        extended = 0
        with self._lock:
            for reservation_id in reservation_ids:
                reservation = self._reservations.get(reservation_id)
                if reservation is not None:
                    reservation.expires_at = max(reservation.expires_at, until)
                    extended += 1
        return extended

    def expire(self, now: datetime) -> int:
        """Free the expired reservations (returns how many) and forget empty rate buckets."""
        at = epoch_ms(now)
        with self._lock:
            expired = [rid for rid, res in self._reservations.items() if res.expires_at <= now]
            for reservation_id in expired:
                self._release(reservation_id)
            if expired:
                self.version = next(_VERSIONS)
            empty = [key for key, bucket in self._buckets.items() if bucket.empty_at_ms() <= at]
            for key in empty:
                del self._buckets[key]
            return len(expired)

    def members(self, policy_id: str, window_keys: Collection[str]) -> set[str]:
        found: set[str] = set()
        with self._lock:
            windows = self._members.get(policy_id)
            if windows:
                for window in window_keys:
                    found.update(windows.get(window, ()))
        return found

    def prune(self, live: Mapping[str, str]) -> int:
        """Drop the settled counters that no policy can read any more (``live``: per policy
        id, its oldest live window key; see ``domain.budgets.live_windows``). A reservation
        in flight keeps its counter until it ends. Returns how many counters were dropped."""
        with self._lock:
            ended = [
                (policy_id, window)
                for policy_id, windows in self._members.items()
                for window in windows
                if not is_live(live, policy_id, window)
            ]
        dropped = 0
        for policy_id, window in ended:
            with self._lock:
                members = list(self._members.get(policy_id, {}).get(window, ()))
            for start in range(0, len(members), _PRUNE_BATCH):
                with self._lock:
                    for member in members[start : start + _PRUNE_BATCH]:
                        key = CounterKey(policy_id, member, window)
                        if self._settled.pop(key, None) is not None:
                            dropped += 1
                        if key not in self._reserved:
                            self._unindex(key)
                    self.version = next(_VERSIONS)
        return dropped

    def _index(self, key: CounterKey) -> None:
        windows = self._members.setdefault(key.policy_id, {})
        members = windows.get(key.window)
        if members is None:
            windows[key.window] = {key.member}
        else:
            members.add(key.member)

    def _unindex(self, key: CounterKey) -> None:
        windows = self._members.get(key.policy_id)
        members = windows.get(key.window) if windows is not None else None
        if windows is None or members is None:
            return
        members.discard(key.member)
        if not members:
            del windows[key.window]
            if not windows:
                del self._members[key.policy_id]

    @property
    def open_reservations(self) -> int:
        return len(self._reservations)
