"""The journal's background writer: one thread, one queue, group commit, retry forever.

Callers only ``put`` onto an unbounded ``queue.SimpleQueue`` (a C-level O(1) append that never
waits for the writer or the database), so the asyncio hot path is never blocked. The writer
takes the first item, keeps collecting until ``max_batch_items`` items or ``max_batch_wait_ms``
have passed, and commits them in one transaction, in enqueue order. A flush or close request
cuts the wait short.

Failures:

* transient (locked database, lost connection, disk full, …): the same batch is retried with
  exponential backoff (``retry_initial_ms`` doubling up to ``retry_max_ms``), indefinitely;
  new items keep queueing behind it, so nothing is dropped while the process lives.
* anything else (a constraint violation, an unencodable value): the batch is re-committed item
  by item so that one bad item cannot sink the others; an item that fails alone is *rejected*
  and logged by id (``describe``), and counted in ``stats().rejected_items``.

Logs carry ids, counts and the driver's error message; never row values (engines are created
with ``hide_parameters=True``) and never the database password.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from queue import Empty, SimpleQueue

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from spendgate.store.batch import BatchResult, Item, apply_batch, describe, prepare_batch
from spendgate.store.policy_codec import PolicyDigests

__all__ = ["BatchWriter", "JournalClosedError", "JournalError", "WriterSettings", "WriterStats"]

log = logging.getLogger("spendgate.journal")


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

    def __post_init__(self) -> None:
        if self.max_batch_items < 1:
            raise ValueError("max_batch_items must be at least 1")
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


class _Flush:
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
        self, engine: Engine, settings: WriterSettings, *, name: str = "spendgate-journal"
    ) -> None:
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
        self._digests = PolicyDigests()  # writer thread only
        self._dialect = engine.dialect.name
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # --- caller side (any thread, including the event loop) -------------------------------

    def put(self, item: Item) -> None:
        if self._closed:
            raise JournalClosedError("the journal is closed")
        self._queue.put(item)

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
        lost = self._lost + self._queue.qsize()
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
        )

    # --- writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            items, markers, stopping = self._collect(block=True)
            self._commit_all(items)
            for marker in markers:
                marker.done.set()
        # A put that raced with close may have landed after the stop marker: commit it too.
        while True:
            items, markers, _ = self._collect(block=False)
            if not items and not markers:
                break
            self._commit_all(items)
            for marker in markers:
                marker.done.set()

    def _collect(self, *, block: bool) -> tuple[list[Item], list[_Flush], bool]:
        items: list[Item] = []
        markers: list[_Flush] = []
        limit = self._settings.max_batch_items
        deadline: float | None = None
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
                return items, markers, True
            if isinstance(entry, _Flush):
                markers.append(entry)
                deadline = None  # somebody is waiting: commit what we have now
                continue
            items.append(entry)
        self._in_flight = len(items)
        return items, markers, False

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
                        log.warning(
                            "journal batch of %d item(s) failed (attempt %d), retrying in "
                            "%.2fs: %s",
                            len(items),
                            attempts,
                            delay,
                            self._last_error,
                        )
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
                log.info("journal batch committed after %d failed attempt(s)", attempts)
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
