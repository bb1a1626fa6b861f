"""The journal's background writer: one thread, one bounded queue, group commit, retry forever.

Callers only ``put`` onto a ``queue.SimpleQueue`` (a C-level O(1) append that never waits for
the writer or the database), so the asyncio hot path is never blocked. The writer
takes the first item, keeps collecting until ``max_batch_items`` items or ``max_batch_wait_ms``
have passed, and commits them in one transaction, in enqueue order. A flush or close request
cuts the wait short.

Failures:

* transient (locked database, lost connection, disk full, …): the same batch is retried with
  exponential backoff (``retry_initial_ms`` doubling up to ``retry_max_ms``), indefinitely;
  new items keep queueing behind it, so nothing is dropped while the process lives. The
  first failure and every tenth are logged at ERROR, the recovery at WARNING.
* anything else (a constraint violation, an unencodable value): the batch is re-committed item
  by item so that one bad item cannot sink the others; an item that fails alone is *rejected*
  and logged by id (``describe``), and counted in ``stats().rejected_items``.

A full queue (``max_pending`` items waiting) holds counter increments and drops decision
records (``overflow.Overflow``).

This thread is where a batch is committed whichever process it runs in: in the gateway's own
process when the journal is opened with ``WriterSettings(process=False)``, and otherwise in
the journal's writer process (``writer_process``), fed by the gateway's ``ProcessWriter``.

Logs carry ids, counts and the driver's error message; never row values (engines are created
with ``hide_parameters=True``) and never the database password.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from queue import Empty, SimpleQueue

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from spendgate.store.batch import (
    BatchResult,
    CounterIncrements,
    Item,
    apply_batch,
    describe,
    prepare_batch,
)
from spendgate.store.overflow import Overflow
from spendgate.store.policy_codec import PolicyDigests

__all__ = ["BatchWriter", "JournalClosedError", "JournalError", "WriterSettings", "WriterStats"]

log = logging.getLogger("spendgate.journal")

# The journal counts as degraded while it dropped a record this recently, or is half full.
_DEGRADED_AFTER_DROP_S = 300.0


class JournalError(RuntimeError):
    """Journal items could not be committed (only raised by ``close``)."""


class JournalClosedError(JournalError):
    """An item was enqueued after ``close``."""


@dataclass(frozen=True, slots=True)
class WriterSettings:
    """Group-commit parameters. The defaults favour throughput at a small durability window."""

    max_batch_items: int = 512
    max_batch_wait_ms: float = 50.0
    retry_initial_ms: float = 50.0
    retry_max_ms: float = 5_000.0
    close_timeout_s: float = 30.0
    max_pending: int = 100_000  # queued items beyond which decision records are dropped
    # Commit in a separate, lower-priority process (``writer_process``) rather than on a
    # thread of the caller's interpreter; see docs/journal.md, "Hot path". The gateway turns
    # it on (config ``journal.writer``); library and CLI uses keep the thread.
    process: bool = False
    # Process writer: how long the gateway gathers records before sending them (one write
    # to the pipe per interval, not per request).
    send_interval_ms: float = 2.0

    def __post_init__(self) -> None:
        if self.max_batch_items < 1 or self.max_pending < 1:
            raise ValueError("max_batch_items and max_pending must be at least 1")
        if self.max_batch_wait_ms < 0 or self.retry_initial_ms <= 0:
            raise ValueError("batch wait must be ≥ 0 and retry delay > 0")


@dataclass(frozen=True, slots=True)
class WriterStats:
    pending: int  # enqueued, not yet committed (approximate while the writer runs)
    committed_items: int
    committed_batches: int
    skipped_items: int  # settlements of unknown / already settled decisions
    rejected_items: int  # failed alone with a non-transient error (logged)
    failed_attempts: int  # transaction attempts that failed (each one retried)
    lost_items: int  # abandoned at close because the database stayed unavailable
    last_error: str | None
    max_pending: int
    dropped_items: int  # decision records dropped because the queue was full
    held_counters: int  # counters with increments held back by a full queue (merged)
    seconds_since_drop: float | None
    writer_restarts: int = 0  # writer processes that died and were replaced

    @property
    def degraded(self) -> bool:
        """The database is not keeping up: half the queue is used, or records were dropped
        in the last few minutes."""
        since = self.seconds_since_drop
        return self.pending * 2 >= self.max_pending or (
            since is not None and since < _DEGRADED_AFTER_DROP_S
        )


class _Flush:
    """Commit what is collected now; ``done`` is set once it is."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Stop:
    __slots__ = ()


_Entry = Item | _Flush | _Stop


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def safe_error(exc: BaseException) -> str:
    """The error's type and driver message, without SQL parameters; bounded in length."""
    detail = exc.orig if isinstance(exc, DBAPIError) else exc
    return f"{type(exc).__name__}: {detail}"[:300]


class BatchWriter:
    def __init__(
        self,
        engine: Engine,
        settings: WriterSettings,
        *,
        name: str = "spendgate-journal",
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        """``on_progress`` is called on the writer thread after each batch is done with and
        after each failed attempt (the writer process reports its stats from it)."""
        self._engine = engine
        self._settings = settings
        self._queue: SimpleQueue[_Entry] = SimpleQueue()
        self._closed = False
        self._abandon = threading.Event()
        self._in_flight = 0
        self._committed_items = 0
        self._committed_batches = 0
        self._skipped = 0
        self._rejected = 0
        self._failed_attempts = 0
        self._lost = 0
        self._last_error: str | None = None
        self._overflow = Overflow(settings.max_pending)
        self._on_progress = on_progress
        self._digests = PolicyDigests()  # writer thread only
        self._dialect = engine.dialect.name
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # --- caller side (any thread, including the event loop) -------------------------------

    def put(self, item: Item) -> None:
        if self._closed:
            raise JournalClosedError("the journal is closed")
        if self._queue.qsize() < self._settings.max_pending:
            self._queue.put(item)
        elif isinstance(item, CounterIncrements):
            self._overflow.hold(item.increments)
            if self._queue.qsize() == 0:  # the writer drained the queue meanwhile: wake it
                self._queue.put(_Flush())
        else:
            self._overflow.drop(describe(item), self._last_error)

    def request_flush(self) -> None:
        """Commit what is queued now rather than at the end of the batch window (no wait)."""
        self._queue.put(_Flush())

    def queued(self) -> int:
        """Items waiting for a batch."""
        return self._queue.qsize()

    def in_flight(self) -> int:
        """Items of the batch being committed."""
        return self._in_flight

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything put before this call is committed (or rejected)."""
        if not self._thread.is_alive():
            return self._queue.qsize() == 0
        marker = _Flush()
        self._queue.put(marker)
        return marker.done.wait(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Commit everything queued, then stop. Raises ``JournalError`` if items were lost."""
        if self._closed and not self._thread.is_alive():
            return
        self._closed = True
        self._queue.put(_Stop())
        wait = self._settings.close_timeout_s if timeout is None else timeout
        self._thread.join(wait)
        if self._thread.is_alive():
            # The database stayed unavailable: stop retrying, count what is left as lost.
            self._abandon.set()
            self._thread.join(10.0)
        lost = self._lost + self._queue.qsize() + self._overflow.held_counters
        if lost:
            log.error("journal closed with %d item(s) not committed (%s)", lost, self._last_error)
            raise JournalError(f"{lost} journal item(s) could not be committed: {self._last_error}")

    def stats(self) -> WriterStats:
        return WriterStats(
            pending=self._queue.qsize() + self._in_flight,
            committed_items=self._committed_items,
            committed_batches=self._committed_batches,
            skipped_items=self._skipped,
            rejected_items=self._rejected,
            failed_attempts=self._failed_attempts,
            lost_items=self._lost,
            last_error=self._last_error,
            max_pending=self._settings.max_pending,
            dropped_items=self._overflow.dropped,
            held_counters=self._overflow.held_counters,
            seconds_since_drop=self._overflow.seconds_since_drop(),
        )

    # --- writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._write_until_stopped()
        except BaseException:
            # Never expected (_commit_all catches every failure of a batch): say so loudly,
            # since nothing more reaches the database.
            log.critical(
                "journal writer thread died: nothing more is written to the database (%d "
                "record(s) waiting); restart the gateway",
                self._queue.qsize(),
                exc_info=True,
            )

    def _write_until_stopped(self) -> None:
        stopping = False
        while not stopping:
            items, markers, stopping = self._collect(block=True)
            self._commit_all(items)
            for marker in markers:
                marker.done.set()
            self._progress()
        # A put that raced with close may have landed after the stop marker: commit it too.
        while True:
            items, markers, _ = self._collect(block=False)
            if not items and not markers:
                break
            self._commit_all(items)
            for marker in markers:
                marker.done.set()
            self._progress()

    def _progress(self) -> None:
        if self._on_progress is not None:
            self._on_progress()

    def _collect(self, *, block: bool) -> tuple[list[Item], list[_Flush], bool]:
        items: list[Item] = []
        markers: list[_Flush] = []
        limit = self._settings.max_batch_items
        deadline: float | None = None
        stopping = False
        while len(items) < limit:
            try:
                if not items and not markers and block:
                    entry = self._queue.get()
                    deadline = time.monotonic() + self._settings.max_batch_wait_ms / 1000
                else:
                    remaining = (deadline - time.monotonic()) if deadline is not None else 0.0
                    entry = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
            except Empty:
                break
            if isinstance(entry, _Stop):
                stopping = True
                break
            if isinstance(entry, _Flush):
                markers.append(entry)
                deadline = None  # somebody is waiting: commit what we have now
                continue
            items.append(entry)
        self._take_held(items)
        self._in_flight = len(items)
        return items, markers, stopping

    def _take_held(self, items: list[Item]) -> None:
        """Commit the increments a full queue held back with this batch. Taken after the
        batch's flush markers, so a flush also covers increments held before it."""
        held = self._overflow.take_held()
        if held:
            items.insert(0, CounterIncrements(held))

    def _commit_all(self, items: list[Item]) -> None:
        try:
            if items:
                self._commit(items)
        except Exception:  # pragma: no cover - a bug; never let the writer thread die
            log.exception("journal writer: unexpected failure on %d item(s)", len(items))
            self._rejected += len(items)
        finally:
            self._in_flight = 0

    def _commit(self, items: list[Item]) -> None:
        delay = self._settings.retry_initial_ms / 1000
        attempts = 0
        while True:
            if self._abandon.is_set():
                self._lost += len(items)
                return
            try:
                result = self._transaction(items)
            except Exception as exc:
                if _transient(exc):
                    attempts += 1
                    self._failed_attempts += 1
                    self._last_error = safe_error(exc)
                    if attempts == 1 or attempts % 10 == 0:
                        log.error(
                            "journal: database write of %d item(s) failed (attempt %d), "
                            "retrying in %.2fs; the records wait in memory, budgets are "
                            "unaffected: %s",
                            len(items),
                            attempts,
                            delay,
                            self._last_error,
                        )
                    self._progress()
                    self._abandon.wait(delay)
                    delay = min(delay * 2, self._settings.retry_max_ms / 1000)
                    continue
                self._failed_attempts += 1
                self._last_error = safe_error(exc)
                if len(items) > 1:
                    log.warning(
                        "journal batch of %d item(s) failed (%s); committing item by item",
                        len(items),
                        self._last_error,
                    )
                    for item in items:
                        self._commit([item])
                    return
                self._rejected += 1
                log.error("journal item rejected: %s: %s", describe(items[0]), self._last_error)
                return
            if attempts:
                log.warning(
                    "journal: database writes recovered, batch committed after %d failed "
                    "attempt(s)",
                    attempts,
                )
            self._committed_items += len(items) - len(result.skipped)
            self._committed_batches += 1
            self._skipped += len(result.skipped)
            for reason in result.skipped:
                log.warning("journal item skipped: %s", reason)
            return

    def _transaction(self, items: list[Item]) -> BatchResult:
        # Encoded afresh on each attempt (applying consumes a prepared batch), and before the
        # transaction begins, so SQLite's write lock is held only for the SQL itself.
        prepared = prepare_batch(items, datetime.now(UTC), self._digests, self._dialect)
        with self._engine.begin() as connection:
            return apply_batch(connection, prepared)
