"""A ledger shared by several processes, seen from one of them.

The shared backend (Redis) is the only place where a reservation is admitted: its reserve is
one atomic script, so N processes cannot together pass a limit. Everything else this process
does with the ledger is shaped around two facts:

* **Planning reads a local view.** Routing under budget pressure, thresholds and the
  explanation read counters on every request, too often for a network round trip each. The
  view holds the counters this process uses: its own reservations and settlements at once,
  everyone's every ``refresh_seconds`` (one ``read_many`` round trip for all of them), and the
  members of each policy's current windows (so listings and alerts see other replicas'
  members too). Numbers read from it may be that much behind; admission never is.
* **Only the reservation is awaited.** Settling, releasing and keeping holds alive are sent
  in the background, in order. That is safe for the limits: until a settlement lands, the hold
  it replaces (an upper bound of it) stays counted; until a release lands, the hold stays.

When the backend cannot be reached, ``failure`` decides: ``closed`` refuses (the gateway
answers 503), ``open`` admits without a hold, counts it (``unchecked``) and keeps the
background operations queued, retrying, so nothing settled is lost while the process lives;
the journal has every settlement whatever happens (``spendgate ledger rebuild`` restores the
counters from it).

A backend that comes back empty (a Redis restarted without persistence) refuses to reserve
or settle until it is seeded again (``LedgerUnseededError``): the first process to find it so
seeds it from a snapshot of the journal — its counters, and the ids settled in the last
``RECENT_SETTLEMENTS`` — before anything else lands there. A settlement still queued here
then counts exactly once: the seed counted it if the journal had it (it was settled before
the snapshot's window, or its id is among the recent ones), else it counts when it arrives.
A backend found unseeded while idle (the view's refresh asks) is seeded then too. A process
that sees a seed it has not seen places the holds of its running requests again (the backend
lost them), as they were admitted.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from spendgate.domain.budgets import CounterKey, CounterState, is_live
from spendgate.domain.rate_limits import RateLine, RateRefund
from spendgate.domain.reservations import ReservationLine
from spendgate.ledger.base import (
    DEFAULT_RESERVATION_TTL,
    LedgerFailure,
    LedgerUnavailableError,
    LedgerUnseededError,
    ReserveOutcome,
)

__all__ = ["SharedBackend", "SharedLedger"]

log = logging.getLogger("spendgate.ledger")

_MAX_VIEW_KEYS = 50_000  # counters kept in the view (least recently used dropped first)
_READ_CHUNK = 1_000  # counters per read_many round trip
_RETRY_FIRST_S = 0.05
_RETRY_MAX_S = 2.0
# How far back a seed marks the journal's settlements one by one: longer than the journal
# takes to commit a settlement (so one settled before it is in the seed's counters) and than
# the clocks of the processes differ.
RECENT_SETTLEMENTS = timedelta(seconds=60)

# The journal's settled counters and the ids it settled since a given time, in one snapshot.
JournalSnapshot = Callable[[datetime], tuple[Mapping[CounterKey, Decimal], Collection[str]]]


def _nothing() -> None:
    return None


def _no_journal(since: datetime) -> tuple[Mapping[CounterKey, Decimal], Collection[str]]:
    return {}, ()


class SharedBackend(Protocol):
    """What ``SharedLedger`` needs of a shared backend (``ledger.redis.RedisLedger``)."""

    async def reserve(
        self,
        reservation_id: str,
        lines: Sequence[ReservationLine],
        now: datetime,
        ttl: timedelta = DEFAULT_RESERVATION_TTL,
        rates: Sequence[RateLine] = (),
    ) -> ReserveOutcome: ...

    async def refund(self, refunds: Sequence[RateRefund], now: datetime) -> None: ...

    async def settle(
        self,
        reservation_id: str,
        actual: Mapping[CounterKey, int],
        settled_at: datetime | None = None,
    ) -> None: ...

    async def settle_many(
        self,
        settlements: Sequence[tuple[str, Mapping[CounterKey, int]]],
        settled_at: Sequence[datetime] | None = None,
    ) -> int: ...

    async def release(self, reservation_id: str) -> None: ...

    async def extend(self, reservation_ids: Collection[str], until: datetime) -> int: ...

    async def expire(self, now: datetime) -> int: ...

    async def read_many(self, keys: Sequence[CounterKey]) -> dict[CounterKey, CounterState]: ...

    async def members(self, policy_id: str, window_keys: Collection[str]) -> set[str]: ...

    async def members_many(self, windows: Mapping[str, Collection[str]]) -> dict[str, set[str]]: ...

    async def is_seeded(self) -> bool: ...

    async def seed_mark(self) -> str | None: ...

    async def reseed(
        self, settled: Mapping[CounterKey, Decimal], recent: Collection[str], since: datetime
    ) -> bool: ...


@dataclass(slots=True)
class _Hold:
    amounts: dict[CounterKey, int]  # attos
    expires_at: datetime
    lines: Sequence[ReservationLine]  # to place it again in a backend that lost it


# A background operation: a coroutine factory, so a failed one can be tried again.
_Operation = Callable[[], Awaitable[object]]
_Settlement = tuple[str, Mapping[CounterKey, int]]  # attos
_SETTLE_BATCH = 64  # settlements sent in one script when they queue up
# How long a settlement waits for others to go with it. Redis runs one script at a time: sent
# one by one, each request's settlement delayed the next request's reservation behind it
# (measured: bench/README.md); its hold stays counted meanwhile, so a limit only gets
# stricter for those milliseconds.
_SETTLE_GATHER_S = 0.005


@dataclass(slots=True, frozen=True)
class _Pending:
    name: str
    operation: _Operation
    settlement: _Settlement | None = None  # a settle, which may go with its neighbours
    # When it was settled: a retry after the backend was seeded again must know whether the
    # seed (the journal, which has it from then on) counted it already.
    settled_at: datetime | None = None


class SharedLedger:
    """The ``Ledger`` contract (synchronous reads, settle, release, extend, expire) plus
    ``reserve_async``, over a ``SharedBackend``. Call ``start()`` on the event loop that
    serves requests and ``await stop()`` on shutdown."""

    def __init__(
        self,
        backend: SharedBackend,
        *,
        failure: LedgerFailure = LedgerFailure.CLOSED,
        refresh_seconds: float = 1.0,
        windows: Callable[[], Mapping[str, Collection[str]]] | None = None,
        journaled: JournalSnapshot | None = None,
    ) -> None:
        self.backend = backend
        self.failure = failure
        self.refresh_seconds = refresh_seconds
        # Per counter id, the window keys requests read now (to discover every member).
        self.windows = windows or dict
        # The journal's snapshot: the backend is seeded from it before anything is admitted
        # (a cold Redis must not start every budget from zero).
        self.journaled = journaled or _no_journal
        self._seeding = asyncio.Lock()
        self._mark: str | None = None  # the backend's seed, as this process last saw it
        self._view: OrderedDict[CounterKey, CounterState] = OrderedDict()
        self._holds: dict[str, _Hold] = {}
        self._pending: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.available = True
        self.unchecked = 0  # requests admitted without a hold while the backend was away
        self.refused = 0  # requests refused (closed) because the backend was away
        self.failed_attempts = 0
        # Told when ``available`` changes and when a request is refused or admitted unchecked
        # for it (the ledger watch, which alerts): it must only record and return, as it is
        # called on the request path.
        self.on_change: Callable[[], None] = _nothing

    # -- reads: the local view ---------------------------------------------------------------

    def read(self, key: CounterKey) -> CounterState:
        state = self._view.get(key)
        if state is None:
            self._remember(key, CounterState())
            return CounterState()
        self._view.move_to_end(key)
        return state

    def read_total(self, keys: Sequence[CounterKey]) -> CounterState:
        total = CounterState()
        for key in keys:
            total = total + self.read(key)
        return total

    def members(self, policy_id: str, window_keys: Collection[str]) -> set[str]:
        windows = set(window_keys)
        return {k.member for k in self._view if k.policy_id == policy_id and k.window in windows}

    async def refresh(self, keys: Collection[CounterKey]) -> None:
        """Read ``keys`` from the backend now (before trusting the view to refuse a request:
        it may be up to ``refresh_seconds`` behind)."""
        try:
            states = await self.backend.read_many(list(keys))
        except LedgerUnavailableError as error:
            self._lost(error)
            return
        for key, state in states.items():
            self._remember(key, state)

    # -- the reservation: awaited ------------------------------------------------------------

    async def reserve_async(
        self,
        reservation_id: str,
        lines: Sequence[ReservationLine],
        now: datetime,
        ttl: timedelta = DEFAULT_RESERVATION_TTL,
        rates: Sequence[RateLine] = (),
    ) -> ReserveOutcome:
        if reservation_id in self._holds:
            raise ValueError(f"reservation {reservation_id} already exists")
        try:
            try:
                outcome = await self.backend.reserve(reservation_id, lines, now, ttl, rates)
            except LedgerUnseededError:
                await self._seed()
                outcome = await self.backend.reserve(reservation_id, lines, now, ttl, rates)
        except LedgerUnavailableError:
            self._lost()
            if self.failure is LedgerFailure.CLOSED:
                self.refused += 1
                self.on_change()
                raise
            self.unchecked += 1
            self.on_change()
            return ReserveOutcome(True)
        self._found()
        if outcome.ok:
            amounts: dict[CounterKey, int] = {}
            for line in lines:
                key = line.keys[-1]
                amounts[key] = amounts.get(key, 0) + line.amount_atto
            for key, amount in amounts.items():
                self._add(key, 0, amount)
            self._holds[reservation_id] = _Hold(amounts, now + ttl, lines)
        return outcome

    def reserve(
        self,
        reservation_id: str,
        lines: Sequence[ReservationLine],
        now: datetime,
        ttl: timedelta = DEFAULT_RESERVATION_TTL,
        rates: Sequence[RateLine] = (),
    ) -> ReserveOutcome:
        raise TypeError("a shared ledger answers over the network: await reserve_async")

    def refund(self, refunds: Sequence[RateRefund], now: datetime) -> None:
        """Sent in the background: until it lands, the tokens stay taken (stricter, never
        looser)."""
        given = list(refunds)
        self._send("refund", lambda: self.backend.refund(given, now))

    # -- the rest: sent in the background, in order --------------------------------------------

    def settle(self, reservation_id: str, actual: Mapping[CounterKey, int]) -> None:
        self._drop_hold(reservation_id)
        for key, amount in actual.items():
            self._add(key, amount, 0)
        amounts = dict(actual)
        at = datetime.now(UTC)
        self._pending.append(
            _Pending(
                "settle",
                lambda: self.backend.settle(reservation_id, amounts, at),
                (reservation_id, amounts),
                at,
            )
        )
        self._wake.set()

    def release(self, reservation_id: str) -> None:
        if self._drop_hold(reservation_id):
            self._send("release", lambda: self.backend.release(reservation_id))

    def extend(self, reservation_ids: Collection[str], until: datetime) -> int:
        ours = [rid for rid in reservation_ids if rid in self._holds]
        for rid in ours:
            hold = self._holds[rid]
            hold.expires_at = max(hold.expires_at, until)
        if ours:
            self._send("extend", lambda: self.backend.extend(ours, until))
        return len(ours)

    def expire(self, now: datetime) -> int:
        """Forget this process's holds that expired, and have the backend free every expired
        reservation (of any process: a crashed one's too). Returns the local count."""
        expired = [rid for rid, hold in self._holds.items() if hold.expires_at <= now]
        for rid in expired:
            self._drop_hold(rid)
        self._send("expire", lambda: self.backend.expire(now))
        return len(expired)

    def prune(self, live: Mapping[str, str]) -> int:
        """Drop view entries of windows no policy reads any more (the backend's keys expire
        by themselves)."""
        ended = [key for key in self._view if not is_live(live, key.policy_id, key.window)]
        for key in ended:
            del self._view[key]
        return len(ended)

    @property
    def open_reservations(self) -> int:
        return len(self._holds)

    def health(self) -> dict[str, object]:
        """For ``/healthz``: whether the backend answers, what waits to be sent, and how many
        requests were admitted unchecked while it did not."""
        return {
            "shared": True,
            "available": self.available,
            "failure": self.failure.value,
            "pending_operations": len(self._pending),
            "admitted_unchecked": self.unchecked,
            "refused_unavailable": self.refused,
        }

    @property
    def pending_operations(self) -> int:
        return len(self._pending)

    # -- background ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Seed the backend from the journal (if it can be reached now; else before the first
        reservation), then send operations and refresh the view in the background."""
        try:
            await self._seed()
        except LedgerUnavailableError as error:
            self._lost(error)
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._send_pending(), name="spendgate-ledger-send"),
                asyncio.create_task(self._refresh_view(), name="spendgate-ledger-view"),
            ]

    async def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (within ``timeout``), then stop."""
        deadline = time.monotonic() + timeout
        while self._pending and self.available and time.monotonic() < deadline:
            self._wake.set()
            await asyncio.sleep(0.01)
        if self._pending:
            log.error(
                "shared ledger: %d operation(s) not sent at shutdown (the journal has the "
                "settlements: spendgate ledger rebuild restores the counters)",
                len(self._pending),
            )
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _seed(self) -> None:
        """Seed the backend from the journal if it has not been (it started empty); then, if
        it was seeded since this process last looked, place this process's holds again."""
        async with self._seeding:  # requests arriving together seed once
            mark = await self.backend.seed_mark()
            if mark is None:
                since = datetime.now(UTC) - RECENT_SETTLEMENTS
                settled, recent = await asyncio.to_thread(self.journaled, since)
                if await self.backend.reseed(settled, recent, since):
                    log.info(
                        "shared ledger: seeded from the journal (%d counter(s), %d recent "
                        "settlement(s))",
                        len(settled),
                        len(recent),
                    )
                mark = await self.backend.seed_mark()
            if mark is not None and mark != self._mark:
                await self._hold_again()
                self._mark = mark

    async def _hold_again(self) -> None:
        """A new seed means the backend lost what it held, this process's holds too: requests
        still running here would no longer count against their budgets until they settle, and
        others could take their room. Each is placed again as it was admitted (no limit
        check: it was checked then); one settled or released meanwhile is skipped."""
        now = datetime.now(UTC)
        placed = 0
        for rid in list(self._holds):
            hold = self._holds.get(rid)
            if hold is None:  # settled or released while an earlier one was placed
                continue
            lines = [line._replace(limit_atto=None) for line in hold.lines]
            ttl = max(hold.expires_at - now, timedelta(seconds=1))
            try:
                await self.backend.reserve(rid, lines, now, ttl)
            except ValueError:  # open already (its own seed kept it), or settled
                continue
            placed += 1
        if placed:
            log.info("shared ledger: %d hold(s) of running requests placed again", placed)

    def _send(self, name: str, operation: _Operation) -> None:
        self._pending.append(_Pending(name, operation))
        self._wake.set()

    async def _send_pending(self) -> None:
        backoff = _RETRY_FIRST_S
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                if self._pending[0].settlement is not None and self.available:
                    await asyncio.sleep(_SETTLE_GATHER_S)
                batch = self._next_batch()
                try:
                    try:
                        await self._send_batch(batch)
                    except LedgerUnseededError:
                        await self._seed()
                        await self._send_batch(batch)
                except LedgerUnavailableError as error:
                    self.failed_attempts += 1
                    self._lost(error)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _RETRY_MAX_S)
                    continue
                except Exception:  # a bug, not an outage: log it, never block the queue
                    log.exception("shared ledger: %s failed; dropped", batch[0].name)
                for _ in batch:
                    self._pending.popleft()
                backoff = _RETRY_FIRST_S
                self._found()

    def _next_batch(self) -> list[_Pending]:
        """The head of the queue: one operation, or the settlements queued one after another
        (sent in one script: under load, counters they share are written once, not once per
        request)."""
        batch = [self._pending[0]]
        if batch[0].settlement is not None:
            for pending in itertools.islice(self._pending, 1, _SETTLE_BATCH):
                if pending.settlement is None:
                    break
                batch.append(pending)
        return batch

    async def _send_batch(self, batch: list[_Pending]) -> None:
        if len(batch) > 1:
            await self._settle_batch(batch)
        else:
            await batch[0].operation()

    async def _settle_batch(self, batch: list[_Pending]) -> None:
        try:
            await self.backend.settle_many(
                [p.settlement for p in batch if p.settlement],
                [p.settled_at or datetime.now(UTC) for p in batch if p.settlement],
            )
        except ValueError:
            # One settlement the backend cannot hold (a sum beyond its range) must not take
            # its neighbours with it: send them one by one, that one dropped and logged.
            for pending in batch:
                try:
                    await pending.operation()
                except ValueError:
                    log.exception("shared ledger: %s failed; dropped", pending.name)

    async def _refresh_view(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                if await self.backend.seed_mark() != self._mark:
                    await self._seed()  # seeded (and this process's holds placed) again
                await self._discover_members()
                keys = list(self._view)
                for start in range(0, len(keys), _READ_CHUNK):
                    states = await self.backend.read_many(keys[start : start + _READ_CHUNK])
                    for key, state in states.items():
                        if key in self._view:
                            self._view[key] = state
                self._found()  # an idle process learns that the backend is back too
            except LedgerUnavailableError as error:
                self._lost(error)
            except Exception:
                log.exception("shared ledger: refreshing the view failed")

    async def _discover_members(self) -> None:
        windows = self.windows()
        found = await self.backend.members_many(windows)  # one round trip for every policy
        for policy_id, window_keys in windows.items():
            for member in found.get(policy_id, ()):
                for window in window_keys:
                    key = CounterKey(policy_id, member, window)
                    if key not in self._view:
                        self._remember(key, CounterState())

    # -- view upkeep ---------------------------------------------------------------------------

    def _add(self, key: CounterKey, settled: int, reserved: int) -> None:
        """Add attos to a counter of the view."""
        previous = self._view.get(key, CounterState())
        self._remember(
            key,
            CounterState(
                previous.settled_atto + settled, max(previous.reserved_atto + reserved, 0)
            ),
        )

    def _remember(self, key: CounterKey, state: CounterState) -> None:
        self._view[key] = state
        self._view.move_to_end(key)
        while len(self._view) > _MAX_VIEW_KEYS:
            self._view.popitem(last=False)

    def _drop_hold(self, reservation_id: str) -> bool:
        hold = self._holds.pop(reservation_id, None)
        if hold is None:
            return False
        for key, amount in hold.amounts.items():
            self._add(key, 0, -amount)
        return True

    def _lost(self, error: BaseException | None = None) -> None:
        if self.available:
            log.warning(
                "shared ledger unreachable (%s): %s",
                error or "reserve failed",
                "refusing requests"
                if self.failure is LedgerFailure.CLOSED
                else "admitting requests unchecked, operations queued",
            )
            self.available = False
            self.on_change()

    def _found(self) -> None:
        if not self.available:
            log.info(
                "shared ledger reachable again (%d request(s) admitted unchecked so far); "
                "settlements queued meanwhile are being sent",
                self.unchecked,
            )
            self.available = True
            self.on_change()
