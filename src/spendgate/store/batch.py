"""What the background writer commits: queued items, and how one batch becomes one transaction.

A batch is first encoded and aggregated (``prepare_batch``: pure Python, outside any
transaction, so SQLite's write lock is not held meanwhile), then applied in one transaction, in
enqueue order (``apply_batch``): policy snapshots the decisions refer to (insert if absent),
decision inserts, settlements (``UPDATE … WHERE settled_at IS NULL``, so a repeated settlement
cannot double-count), then counter and rollup increments, aggregated per key so that a hot key
costs one upsert per batch, not one per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from spendgate.domain.budgets import CounterKey
from spendgate.domain.pricing import Usage
from spendgate.domain.routing import RoutingDecision
from spendgate.store import schema
from spendgate.store.codec import (
    DECISION_COLUMNS,
    DatetimeEncoder,
    decision_values,
    hour_start,
    settlement_values,
)
from spendgate.store.db import datetime_encoder, dialect_insert, insert_tuples, upsert_increment
from spendgate.store.money import ATTO, to_atto
from spendgate.store.policy_codec import PolicyDigests
from spendgate.store.rollups import (
    ADDED_COLUMNS,
    VALUE_COLUMNS,
    FineKey,
    RollupDelta,
    family_rows,
)

__all__ = [
    "AppendDecision",
    "BatchResult",
    "CounterIncrements",
    "Item",
    "PreparedBatch",
    "SettleDecision",
    "apply_batch",
    "describe",
    "prepare_batch",
]

log = logging.getLogger("spendgate.journal")


@dataclass(frozen=True, slots=True)
class AppendDecision:
    decision: RoutingDecision
    usage_estimated: bool = False


@dataclass(frozen=True, slots=True)
class SettleDecision:
    decision_id: str
    usage: Usage
    cost_usd: Decimal | None
    requested_cost_usd: Decimal | None
    latency_ms: float | None
    status: str
    usage_estimated: bool
    settled_at: datetime


@dataclass(frozen=True, slots=True)
class CounterIncrements:
    increments: Mapping[CounterKey, Decimal]


Item = AppendDecision | SettleDecision | CounterIncrements


def describe(item: Item) -> str:
    """An item named for logs: ids only, never values or scopes."""
    if isinstance(item, AppendDecision):
        return f"append decision {item.decision.id}"
    if isinstance(item, SettleDecision):
        return f"settle decision {item.decision_id}"
    return f"{len(item.increments)} counter increment(s)"


@dataclass(frozen=True, slots=True)
class BatchResult:
    """``skipped``: items that are invalid against the database (logged, not retried)."""

    skipped: tuple[str, ...] = ()


_BLOCKING = frozenset({"block", "approval_required"})
_GIL_SLICE_S = 0.001


@dataclass(slots=True)
class PreparedBatch:
    """A batch encoded and aggregated, ready for one transaction (used once: applying it
    records settlements in it)."""

    now: datetime
    digests: PolicyDigests
    encode_datetime: DatetimeEncoder
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    decisions: list[tuple[Any, ...]] = field(default_factory=list)
    settles: list[SettleDecision] = field(default_factory=list)
    counters: dict[CounterKey, int] = field(default_factory=dict)
    rollups: dict[FineKey, RollupDelta] = field(default_factory=dict)
    # Rollup key and settled flag of decisions appended in this batch (settled in it, maybe).
    appended: dict[str, tuple[FineKey, bool]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def rollup(self, key: FineKey) -> RollupDelta:
        delta = self.rollups.get(key)
        if delta is None:
            delta = self.rollups[key] = RollupDelta()
        return delta


def _rollup_key(
    created_at: datetime,
    project: str | None,
    principal: str | None,
    model: str | None,
    provider: str | None,
    agent: str | None,
) -> FineKey:
    # None (no project, or no model called: a refused decision) is '' in a rollup key.
    return (
        hour_start(created_at),
        project or "",
        principal or "",
        model or "",
        provider or "",
        agent or "",
    )


def _add_append(batch: PreparedBatch, item: AppendDecision) -> None:
    decision = item.decision
    for evaluation in decision.budget_evaluations:
        digest, spec = batch.digests.snapshot(evaluation.policy)
        batch.snapshots[digest] = spec
    batch.decisions.append(
        decision_values(
            decision,
            batch.digests,
            batch.encode_datetime,
            usage_estimated=item.usage_estimated,
            now=batch.now,
        )
    )
    key = _rollup_key(
        decision.created_at,
        decision.scopes.project,
        decision.scopes.principal,
        decision.actual_model,
        decision.provider,
        decision.scopes.agent,
    )
    delta = batch.rollup(key)
    delta.count_request(
        blocked=decision.refused,
        rerouted=not decision.refused and decision.target_model != decision.requested_model,
        would_block=decision.would_action is not None and decision.would_action.value in _BLOCKING,
    )
    if decision.usage is not None:
        delta.add_usage(
            decision.usage,
            decision.actual_cost_usd,
            decision.latency_ms,
            decision.requested_cost_usd,
        )
    batch.appended[decision.id] = (key, decision.usage is not None)


def _add_counters(batch: PreparedBatch, item: CounterIncrements) -> None:
    for key, amount in item.increments.items():
        batch.counters[key] = batch.counters.get(key, 0) + to_atto(amount)


def _apply_settles(connection: Connection, batch: PreparedBatch) -> None:
    decisions = schema.routing_decisions
    unknown = {s.decision_id for s in batch.settles} - batch.appended.keys()
    if unknown:
        rows = connection.execute(
            select(
                decisions.c.id,
                decisions.c.created_at,
                decisions.c.project,
                decisions.c.principal,
                decisions.c.actual_model,
                decisions.c.provider,
                decisions.c.agent,
                decisions.c.settled_at,
            ).where(decisions.c.id.in_(unknown))
        )
        for row in rows:
            key = _rollup_key(
                row.created_at,
                row.project,
                row.principal,
                row.actual_model,
                row.provider,
                row.agent,
            )
            batch.appended[row.id] = (key, row.settled_at is not None)
    updates: list[dict[str, Any]] = []
    for settle in batch.settles:
        known = batch.appended.get(settle.decision_id)
        if known is None:
            batch.skipped.append(f"settle decision {settle.decision_id}: no such decision")
            continue
        key, already = known
        if already:
            batch.skipped.append(f"settle decision {settle.decision_id}: already settled")
            continue
        batch.appended[settle.decision_id] = (key, True)
        values = settlement_values(
            settle.usage,
            settle.cost_usd,
            settle.requested_cost_usd,
            settle.latency_ms,
            settle.status,
            settle.usage_estimated,
            settle.settled_at,
        )
        values["target_id"] = settle.decision_id
        updates.append(values)
        batch.rollup(key).add_usage(
            settle.usage, settle.cost_usd, settle.latency_ms, settle.requested_cost_usd
        )
    if updates:
        statement = (
            update(decisions)
            .where(decisions.c.id == bindparam("target_id"))
            .where(decisions.c.settled_at.is_(None))
        )
        connection.execute(statement, updates)


_COUNTER_COLUMNS = (
    "policy_id", "member", "window_key", "settled_units", "settled_atto", "updated_at",
)  # fmt: skip


def _counter_rows(counters: Mapping[CounterKey, int], now: datetime) -> list[tuple[Any, ...]]:
    return [
        (key.policy_id, key.member, key.window, *divmod(atto, ATTO), now)
        for key, atto in counters.items()
    ]


def _store_snapshots(connection: Connection, batch: PreparedBatch) -> None:
    if not batch.snapshots:
        return
    rows = [
        {"digest": digest, "policy_id": spec["id"], "spec": spec, "created_at": batch.now}
        for digest, spec in batch.snapshots.items()
    ]
    insert = dialect_insert(connection, schema.policy_snapshots)
    connection.execute(insert.on_conflict_do_nothing(index_elements=["digest"]), rows)


def prepare_batch(
    items: Iterable[Item], now: datetime, digests: PolicyDigests, dialect_name: str
) -> PreparedBatch:
    """Encode and aggregate ``items`` (raises ``ValueError``/``TypeError`` on a bad value)."""
    batch = PreparedBatch(now=now, digests=digests, encode_datetime=datetime_encoder(dialect_name))
    # Encoding is pure Python and holds the GIL the event loop needs; left alone, the loop can
    # wait the interpreter's whole 5 ms switch interval, several times per batch (measured:
    # p99.9 of an event-loop tick ~8 ms). A short sleep every ~1 ms of encoding hands the GIL
    # over (sched_yield does not: the writer takes it straight back), for ~6% of writer time.
    hold_until = time.perf_counter() + _GIL_SLICE_S
    for item in items:
        if time.perf_counter() > hold_until:
            time.sleep(0)
            hold_until = time.perf_counter() + _GIL_SLICE_S
        if isinstance(item, AppendDecision):
            _add_append(batch, item)
        elif isinstance(item, SettleDecision):
            batch.settles.append(item)
        else:
            _add_counters(batch, item)
    return batch


def apply_batch(connection: Connection, batch: PreparedBatch) -> BatchResult:
    """Apply a prepared batch on ``connection`` inside the caller's transaction.

    Raises on any database error (the caller rolls back and retries or isolates). Settlements
    of unknown or already-settled decisions are skipped and reported, not raised: retrying
    cannot fix them, and they must not block the rest of the batch.
    """
    now = batch.now
    _store_snapshots(connection, batch)
    insert_tuples(connection, schema.routing_decisions, DECISION_COLUMNS, batch.decisions)
    if batch.settles:
        _apply_settles(connection, batch)
    upsert_increment(
        connection,
        schema.usage_counters,
        _COUNTER_COLUMNS,
        _counter_rows(batch.counters, now),
        keys=("policy_id", "member", "window_key"),
        add_amounts=("settled",),
        replace=("updated_at",),
    )
    for table, keys, rows in family_rows(batch.rollups):
        upsert_increment(
            connection,
            table,
            (*keys, *VALUE_COLUMNS),
            rows,
            keys=keys,
            add=ADDED_COLUMNS,
            add_amounts=schema.ROLLUP_AMOUNTS,
        )
    return BatchResult(tuple(batch.skipped))
