"""The journal: durable record of decisions, usage counters and rollups, written off the hot path.

Write methods (``append_decision``, ``settle_decision``, ``add_to_counters``) only enqueue: O(1),
no I/O, safe to call from the event loop and from any thread. A writer process group-commits
them (``writer_client``, ``writer_process``), or, with ``WriterSettings(process=False)``, a
thread of this process (``writer``). Read methods are synchronous and meant for startup and the
admin API, never for a request; call them from a worker thread (``asyncio.to_thread``) inside
the gateway.

Durability (details in docs/journal.md): a clean ``close()`` commits everything. A crash loses
what was enqueued but not yet committed — normally at most one batch window (``max_batch_wait_ms``
or ``max_batch_items``) plus the batch being committed; more only if the writer was behind or the
database unavailable (see ``stats().pending``). Batches commit in enqueue order, so what survives
is always a prefix of what was enqueued. This is acceptable because budgets are enforced by the
ledger's in-memory reservations, not by the journal; the journal rebuilds the ledger at start.

The queue is bounded (``WriterSettings.max_pending``): past it, decision records are dropped
(counted in ``stats().dropped_items``, logged) and counter increments are merged, never dropped.
"""

from __future__ import annotations

import atexit
import logging
import weakref
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType

from sqlalchemy import Engine

from spendgate.domain.budgets import CounterKey, CounterState
from spendgate.domain.pricing import Usage
from spendgate.domain.routing import RoutingDecision
from spendgate.store import queries
from spendgate.store.alerts import AlertRepository
from spendgate.store.approvals import ApprovalRepository
from spendgate.store.batch import AppendDecision, CounterIncrements, SettleDecision
from spendgate.store.counting import CountingRegistry
from spendgate.store.db import (
    DEFAULT_BUSY_TIMEOUT_MS,
    DEFAULT_DATABASE_URL,
    make_engine,
    safe_url,
    write_engine,
)
from spendgate.store.migrate import migrate, require_current
from spendgate.store.outbox import WebhookOutbox
from spendgate.store.policies import PolicyRepository
from spendgate.store.prices import PricingRepository
from spendgate.store.records import DecisionFilter, StoredDecision, UsageTotals
from spendgate.store.writer import BatchWriter, WriterSettings, WriterStats
from spendgate.store.writer_client import ProcessWriter

__all__ = ["Journal"]

log = logging.getLogger("spendgate.journal")


class Journal:
    """Open a journal on ``database_url``, migrated to the newest schema; with
    ``auto_migrate=False`` one whose schema is not the newest is refused (``SchemaOutOfDateError``).

    ``settings`` tunes group commit (``WriterSettings``: ``max_batch_items=512``,
    ``max_batch_wait_ms=50``, retries from 50 ms doubling to 5 s) and where it runs
    (``process=True``: a writer process, started at once, in the background; default: a
    thread). Use as a context manager or call ``close()``; an ``atexit`` hook closes a journal
    left open at interpreter exit.
    """

    def __init__(
        self,
        database_url: str = DEFAULT_DATABASE_URL,
        *,
        settings: WriterSettings | None = None,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        auto_migrate: bool = True,
    ) -> None:
        self.database_url = safe_url(database_url)
        self._engine = make_engine(database_url, busy_timeout_ms=busy_timeout_ms)
        try:
            if auto_migrate:
                migrate(database_url, engine=self._engine)
            else:
                require_current(self._engine, self.database_url)
        except BaseException:
            self._engine.dispose()
            raise
        self.pricing = PricingRepository(self._engine)
        self.policies = PolicyRepository(self._engine)
        self.counting = CountingRegistry(self._engine)
        self.approvals = ApprovalRepository(self._engine)
        self.alerts = AlertRepository(self._engine)
        self.outbox = WebhookOutbox(self._engine)
        settings = settings or WriterSettings()
        self._writer: BatchWriter | ProcessWriter = (
            ProcessWriter(database_url, busy_timeout_ms, settings)
            if settings.process
            else BatchWriter(write_engine(self._engine), settings)
        )
        # A weak reference: the hook must not keep an abandoned journal alive.
        self._atexit = _AtExit(weakref.ref(self))
        atexit.register(self._atexit)

    @property
    def engine(self) -> Engine:
        """The read engine (admin queries, tests). Writes go through the writer or repositories."""
        return self._engine

    # --- hot path: enqueue only ------------------------------------------------------------

    def append_decision(self, decision: RoutingDecision, *, usage_estimated: bool = False) -> None:
        """Record a decision. If it already carries ``usage``, it is recorded as settled."""
        self._writer.put(AppendDecision(decision, usage_estimated))

    def settle_decision(
        self,
        decision_id: str,
        usage: Usage,
        cost_usd: Decimal | None,
        latency_ms: float | None,
        status: str,
        usage_estimated: bool = False,
        requested_cost_usd: Decimal | None = None,
    ) -> None:
        """Fill in a recorded decision's actual usage (``cost_usd=None``: unpriced, not $0;
        ``requested_cost_usd``: what it would have cost on the requested model, if rerouted).

        A second settlement of the same decision is ignored (logged), never double-counted.
        """
        self._writer.put(
            SettleDecision(
                decision_id,
                usage,
                cost_usd,
                requested_cost_usd,
                latency_ms,
                status,
                usage_estimated,
                datetime.now(UTC),
            )
        )

    def add_to_counters(self, increments: Mapping[CounterKey, Decimal]) -> None:
        """Add settled amounts to (policy, member, window) counters. The mapping is copied."""
        self._writer.put(CounterIncrements(dict(increments)))

    # --- lifecycle -------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything enqueued before the call is committed; False on timeout."""
        return self._writer.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Commit everything enqueued, stop the writer and release connections.

        Raises ``JournalError`` if the database stayed unavailable past ``timeout`` (default
        ``settings.close_timeout_s``) and items had to be abandoned (they are also logged).
        """
        atexit.unregister(self._atexit)
        try:
            self._writer.close(timeout)
        finally:
            self._engine.dispose()

    def stats(self) -> WriterStats:
        return self._writer.stats()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- read side (startup / admin; synchronous) -----------------------------------------

    def load_counters(
        self, live: Mapping[str, str] | None = None
    ) -> dict[CounterKey, CounterState]:
        """Settled counters, to rebuild the in-memory ledger on start (``reserved`` is 0): with
        ``live`` (``domain.budgets.live_windows``), only those of windows still live."""
        with self._engine.connect() as connection:
            return queries.load_counters(connection, live)

    def settled_snapshot(
        self, live: Mapping[str, str], since: datetime
    ) -> tuple[dict[CounterKey, CounterState], list[str]]:
        """The settled counters of ``live`` windows and the ids of the decisions settled since
        ``since``, from one snapshot of the database (a shared ledger is seeded from both:
        a settlement is in the counters exactly when its id is in the journal). The ids are
        read first: on a database that could not give one snapshot, a settlement committed
        between the two reads would be counted twice, never lost."""
        with self._engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():  # SQLite (WAL): one read transaction, one snapshot
                recent = queries.settled_since(connection, since)
                return queries.load_counters(connection, live), recent

    def get_decision(self, decision_id: str) -> StoredDecision | None:
        with self._engine.connect() as connection:
            return queries.get_decision(connection, decision_id)

    def list_decisions(
        self, limit: int = 100, filters: DecisionFilter | None = None, *, offset: int = 0
    ) -> list[StoredDecision]:
        with self._engine.connect() as connection:
            return queries.list_decisions(connection, limit, filters, offset)

    def usage_totals(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        group_by: Sequence[str] = (),
        project: str | None = None,
        principal: str | None = None,
        model: str | None = None,
        provider: str | None = None,
    ) -> list[UsageTotals]:
        """Totals from the hourly rollups (never the raw decisions); see ``queries``."""
        with self._engine.connect() as connection:
            return queries.usage_totals(
                connection,
                since,
                until,
                group_by=group_by,
                project=project,
                principal=principal,
                model=model,
                provider=provider,
            )

    # --- retention ---------------------------------------------------------------------------

    def prune_decisions(self, before: datetime, *, batch_size: int = 5_000) -> int:
        """Delete raw decisions created before ``before`` (rollups stay), in short transactions
        so the writer is never locked out for long; then return free pages to the OS (SQLite)."""
        writer = write_engine(self._engine)
        total = 0
        while True:
            with writer.begin() as connection:
                deleted = queries.delete_decisions_before(connection, before, batch_size)
            total += deleted
            if deleted < batch_size:
                break
        self._vacuum()
        return total

    def prune_counters(self, window_keys_before: str) -> int:
        """Delete counters of windows starting before the key (older than any live window)."""
        with write_engine(self._engine).begin() as connection:
            deleted = queries.delete_counters_before(connection, window_keys_before)
        self._vacuum()
        return deleted

    def _vacuum(self) -> None:
        if self._engine.dialect.name != "sqlite":
            return
        with self._engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA incremental_vacuum")
            connection.commit()


class _AtExit:
    """Closes the journal at interpreter exit if the application forgot to."""

    __slots__ = ("_ref",)

    def __init__(self, ref: weakref.ReferenceType[Journal]) -> None:
        self._ref = ref

    def __call__(self) -> None:
        journal = self._ref()
        if journal is not None:
            try:
                journal.close()
            except Exception:  # exiting anyway: the error is logged by the writer
                log.exception("journal: close at exit failed")
