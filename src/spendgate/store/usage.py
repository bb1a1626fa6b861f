"""Usage read queries for the admin API: summary, timeline, top and export.

Two sources give the same numbers (the tests hold them to it):

* ``rollups``: the tables the writer maintains (``store.rollups``). Fast at any volume, but they
  only know project, principal, model and provider, or project and agent, and only whole UTC
  hours.
* ``decisions``: the raw ``routing_decisions`` rows, aggregated here exactly as the writer
  aggregates them into rollups (``_Accumulator`` mirrors ``rollups.RollupDelta``). Needed for
  api_key / session filters, other combinations of dimensions and for ranges whose
  boundaries are not whole UTC hours.
  It scans the matching rows (indexed by scope and time) and covers only what retention kept.

Money is summed as exact integer atto units (``money``), never as floats; a settled request
without a price counts in ``unpriced``, never as $0.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, Engine, RowMapping, and_, func, or_, select

from spendgate.domain.latency import latency_bucket
from spendgate.domain.routing import REFUSED, routing_difference
from spendgate.domain.timeline import TimeRange, bucket_index
from spendgate.domain.windows import Window
from spendgate.store import schema
from spendgate.store.money import from_atto, to_atto
from spendgate.store.queries import decision_conditions, keyed_totals, usage_totals
from spendgate.store.records import NO_LATENCIES, DecisionFilter, UsageTotals
from spendgate.store.rollups import FAMILIES

__all__ = [
    "EXPORT_COLUMNS",
    "TOP_DIMENSIONS",
    "ExportCursorError",
    "Source",
    "UsageFilter",
    "choose_source",
    "count_export",
    "export_rows",
    "summary",
    "timeline",
    "top",
]

TOP_DIMENSIONS: Final = ("project", "principal", "model", "provider", "api_key", "agent", "session")
_BLOCKING: Final = frozenset({"block", "approval_required"})
_STREAM_ROWS: Final = 2_000
_NOTHING: Final = UsageTotals()  # frozen: one instance stands for every empty bucket


class Source(StrEnum):
    ROLLUPS = "rollups"
    DECISIONS = "decisions"


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """Scope and model filters; ``None`` means any. ``model`` is the actual model."""

    project: str | None = None
    principal: str | None = None
    api_key: str | None = None
    agent: str | None = None
    session: str | None = None
    model: str | None = None
    provider: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def rollups_can_answer(self, by: str | None = None) -> bool:
        """Whether a rollup family has every dimension these filters (and ``by``) need."""
        needed = {name for name, value in self.as_dict().items() if value is not None}
        if by is not None:
            needed.add(by)
        return any(needed <= set(family.dimensions) for family in FAMILIES)

    def decision_filter(self, span: TimeRange) -> DecisionFilter:
        return DecisionFilter(
            since=span.start,
            until=span.end,
            project=self.project,
            principal=self.principal,
            api_key=self.api_key,
            agent=self.agent,
            session=self.session,
            model=self.model,
            provider=self.provider,
        )


def choose_source(filters: UsageFilter, *, on_utc_hours: bool, by: str | None = None) -> Source:
    """Rollups when they can answer exactly: a family with every dimension filtered (and
    grouped ``by``), and a range (or buckets) bounded by whole UTC hours."""
    exact = on_utc_hours and filters.rollups_can_answer(by)
    return Source.ROLLUPS if exact else Source.DECISIONS


# --- aggregation of decision rows (mirrors the writer's rollup deltas) -----------------------


class _Accumulator:
    __slots__ = (
        "blocked",
        "cached_input_tokens",
        "cost_atto",
        "extra_atto",
        "input_tokens",
        "latency_counts",
        "latency_ms_total",
        "output_tokens",
        "requests",
        "rerouted",
        "saved_atto",
        "settled",
        "unpriced",
        "would_blocked",
    )

    def __init__(self) -> None:
        self.requests = self.settled = self.blocked = self.would_blocked = 0
        self.rerouted = self.unpriced = 0
        self.input_tokens = self.output_tokens = self.cached_input_tokens = 0
        self.cost_atto = self.saved_atto = self.extra_atto = 0
        self.latency_ms_total = 0.0
        self.latency_counts = [0] * len(NO_LATENCIES)

    def add(self, row: Any) -> None:
        self.requests += 1
        if row.routing_action in _BLOCKING or row.status == REFUSED:
            self.blocked += 1
        elif row.actual_model != row.requested_model:
            self.rerouted += 1
        if row.would_action in _BLOCKING:
            self.would_blocked += 1
        if row.settled_at is None:
            return
        self.settled += 1
        self.input_tokens += row.input_tokens or 0
        self.output_tokens += row.output_tokens or 0
        self.cached_input_tokens += row.cached_input_tokens or 0
        if row.actual_cost_usd is None:
            self.unpriced += 1
        else:
            self.cost_atto += to_atto(row.actual_cost_usd)
        saved, extra = routing_difference(row.requested_cost_usd, row.actual_cost_usd)
        self.saved_atto += to_atto(saved)
        self.extra_atto += to_atto(extra)
        if row.latency_ms is not None:
            self.latency_ms_total += row.latency_ms
            self.latency_counts[latency_bucket(row.latency_ms)] += 1

    def totals(
        self, group: dict[str, Any] | None = None, *, histogram: bool = False
    ) -> UsageTotals:
        return UsageTotals(
            group=group or {},
            requests=self.requests,
            settled=self.settled,
            blocked=self.blocked,
            would_blocked=self.would_blocked,
            rerouted=self.rerouted,
            unpriced=self.unpriced,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached_input_tokens=self.cached_input_tokens,
            cost_usd=from_atto(self.cost_atto),
            saved_usd=from_atto(self.saved_atto),
            extra_usd=from_atto(self.extra_atto),
            latency_ms_total=self.latency_ms_total,
            latency_counts=tuple(self.latency_counts) if histogram else None,
        )


_AGGREGATED_COLUMNS: Final = (
    "created_at",
    "routing_action",
    "would_action",
    "requested_model",
    "actual_model",
    "requested_cost_usd",
    "status",
    "settled_at",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "actual_cost_usd",
    "latency_ms",
)


def _decision_rows(
    connection: Connection, span: TimeRange, filters: UsageFilter, extra: Sequence[str] = ()
) -> Iterator[Any]:
    table = schema.routing_decisions
    names = dict.fromkeys((*_AGGREGATED_COLUMNS, *extra))
    query = select(*(table.c[name] for name in names)).where(
        *decision_conditions(filters.decision_filter(span))
    )
    result = connection.execution_options(yield_per=_STREAM_ROWS).execute(query)
    yield from result


def _bucketed(
    connection: Connection,
    span: TimeRange,
    filters: UsageFilter,
    starts: Sequence[datetime],
    by: Sequence[str],
) -> dict[tuple[Any, ...], UsageTotals]:
    given = {name: value for name, value in filters.as_dict().items() if value is not None}
    return keyed_totals(
        connection, span.start, span.end, group_by=("bucket", *by), buckets=starts, **given
    )


def _rollup_totals(
    connection: Connection,
    span: TimeRange,
    filters: UsageFilter,
    group_by: Sequence[str] = (),
    *,
    histogram: bool = False,
) -> list[UsageTotals]:
    given: dict[str, Any] = {k: v for k, v in filters.as_dict().items() if v is not None}
    return usage_totals(
        connection, span.start, span.end, group_by=group_by, histogram=histogram, **given
    )


# --- summary / timeline / top ------------------------------------------------------------------


def summary(
    connection: Connection, span: TimeRange, filters: UsageFilter, source: Source
) -> UsageTotals:
    """Totals over ``span`` with their latency histogram. ``source`` rollups needs ``span`` on
    whole UTC hours."""
    if source is Source.ROLLUPS:
        return _rollup_totals(connection, span, filters, histogram=True)[0]
    accumulator = _Accumulator()
    for row in _decision_rows(connection, span, filters):
        accumulator.add(row)
    return accumulator.totals(histogram=True)


def timeline(
    connection: Connection, windows: Sequence[Window], filters: UsageFilter, source: Source
) -> list[UsageTotals]:
    """One totals per window (contiguous, in order), zeros included."""
    if not windows:
        return []
    span = TimeRange(windows[0].start, windows[-1].end)
    starts = [w.start for w in windows]
    accumulators = [_Accumulator() for _ in windows]
    if source is Source.ROLLUPS:
        per_window = [_NOTHING] * len(windows)
        for (index,), totals in _bucketed(connection, span, filters, starts, ()).items():
            per_window[index] = totals
        return per_window
    for row in _decision_rows(connection, span, filters):
        index = bucket_index(starts, span.end, row.created_at)
        if index is not None:
            accumulators[index].add(row)
    return [accumulator.totals() for accumulator in accumulators]


def timeline_by_model(
    connection: Connection, windows: Sequence[Window], filters: UsageFilter, source: Source
) -> dict[str, list[UsageTotals]]:
    """``timeline`` split by the model that served each request (one query, not one per
    model): model → one totals per window, zeros included."""
    if not windows:
        return {}
    span = TimeRange(windows[0].start, windows[-1].end)
    starts = [w.start for w in windows]
    if source is Source.ROLLUPS:
        lines: dict[str, list[UsageTotals]] = {}
        for (index, model), totals in _bucketed(
            connection, span, filters, starts, ("model",)
        ).items():
            if model not in lines:
                lines[model] = [_NOTHING] * len(windows)
            lines[model][index] = totals
        return lines
    accumulators: dict[str, list[_Accumulator]] = {}
    for row in _decision_rows(connection, span, filters):
        index = bucket_index(starts, span.end, row.created_at)
        if index is not None:
            model = row.actual_model or ""
            line = accumulators.setdefault(model, [_Accumulator() for _ in windows])
            line[index].add(row)
    return {model: [a.totals() for a in line] for model, line in accumulators.items()}


def top(
    connection: Connection, span: TimeRange, filters: UsageFilter, by: str, source: Source
) -> list[UsageTotals]:
    """Totals per member of dimension ``by`` (``group[by]``: the id, or None for "none")."""
    if by not in TOP_DIMENSIONS:
        raise ValueError(f"unknown dimension {by!r}")
    if source is Source.ROLLUPS:
        grouped = _rollup_totals(connection, span, filters, (by,))
        # Rollup keys store "none" as '' (they are part of the primary key).
        return [_regroup(t, {by: t.group[by] or None}) for t in grouped]
    column = "actual_model" if by == "model" else by
    accumulators: dict[str | None, _Accumulator] = {}
    for row in _decision_rows(connection, span, filters, extra=(column,)):
        key = getattr(row, column)
        accumulator = accumulators.get(key)
        if accumulator is None:
            accumulator = accumulators[key] = _Accumulator()
        accumulator.add(row)
    return [accumulator.totals({by: key}) for key, accumulator in accumulators.items()]


def _regroup(totals: UsageTotals, group: dict[str, Any]) -> UsageTotals:
    return replace(totals, group=group)


# --- export ---------------------------------------------------------------------------------

EXPORT_COLUMNS: Final = (
    "id",
    "created_at",
    "project",
    "principal",
    "api_key",
    "agent",
    "session",
    "task_class",
    "mode",
    "requested_model",
    "actual_model",
    "provider",
    "routing_action",
    "would_action",
    "status",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cost_usd",
    "unpriced",
    "estimated_upper_usd",
    "latency_ms",
    "usage_estimated",
    "settled_at",
)


class ExportCursorError(LookupError):
    """``after`` names no decision among those the export selects."""


def _export_conditions(
    connection: Connection, span: TimeRange, filters: UsageFilter, after: str | None
) -> list[ColumnElement[bool]]:
    table = schema.routing_decisions
    conditions = decision_conditions(filters.decision_filter(span))
    if after is None:
        return conditions
    # Keyset pagination on (created_at, id): stable under concurrent inserts. The cursor must
    # itself be a row of this export, so it cannot probe decisions out of the viewer's scope.
    created_at = connection.execute(
        select(table.c.created_at).where(table.c.id == after, *conditions)
    ).scalar_one_or_none()
    if created_at is None:
        raise ExportCursorError(after)
    return [
        *conditions,
        or_(
            table.c.created_at > created_at,
            and_(table.c.created_at == created_at, table.c.id > after),
        ),
    ]


def count_export(
    connection: Connection, span: TimeRange, filters: UsageFilter, after: str | None = None
) -> int:
    """How many decisions an export of these arguments selects (before its limit).

    Raises ``ExportCursorError`` when ``after`` is not one of them.
    """
    table = schema.routing_decisions
    conditions = _export_conditions(connection, span, filters, after)
    query = select(func.count()).select_from(table).where(*conditions)
    return int(connection.execute(query).scalar_one())


def export_rows(
    engine: Engine, span: TimeRange, filters: UsageFilter, limit: int, after: str | None = None
) -> Iterator[dict[str, Any]]:
    """Up to ``limit`` decisions, oldest first, as ``EXPORT_COLUMNS`` → typed value.

    A generator holding its own connection while the caller streams the rows (validate the
    cursor first with ``count_export``: here it would only raise on the first ``next``).
    """
    table = schema.routing_decisions
    with engine.connect() as connection:
        conditions = _export_conditions(connection, span, filters, after)
        query = (
            select(table).where(*conditions).order_by(table.c.created_at, table.c.id).limit(limit)
        )
        result = connection.execution_options(yield_per=_STREAM_ROWS).execute(query)
        for row in result.mappings():
            yield _export_row(row)


def _export_row(row: RowMapping) -> dict[str, Any]:
    settled = row["settled_at"] is not None
    cost: Decimal | None = row["actual_cost_usd"]
    return {
        "id": row["id"],
        "created_at": row["created_at"],
        "project": row["project"],
        "principal": row["principal"],
        "api_key": row["api_key"],
        "agent": row["agent"],
        "session": row["session"],
        "task_class": row["task_class"],
        "mode": row["mode"],
        "requested_model": row["requested_model"],
        "actual_model": row["actual_model"],
        "provider": row["provider"],
        "routing_action": row["routing_action"],
        "would_action": row["would_action"],
        "status": row["status"],
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "cached_input_tokens": row["cached_input_tokens"],
        "cost_usd": cost,
        "unpriced": settled and cost is None,
        "estimated_upper_usd": row["estimated_upper_usd"],
        "latency_ms": row["latency_ms"],
        "usage_estimated": row["usage_estimated"],
        "settled_at": row["settled_at"],
    }
