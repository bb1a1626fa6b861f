"""Read side of the journal: startup and admin queries, never run per request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    RowMapping,
    Text,
    and_,
    delete,
    func,
    or_,
    select,
    type_coerce,
)

from spendgate.domain.budgets import CounterKey, CounterState
from spendgate.store import schema
from spendgate.store.codec import decision_from_row, decision_policy_refs
from spendgate.store.money import ATTO, from_atto, from_parts
from spendgate.store.policy_codec import policy_from_snapshot
from spendgate.store.records import DecisionFilter, StoredDecision, UsageTotals
from spendgate.store.rollups import DIMENSIONS, RollupPart, choose_family

__all__ = [
    "GROUP_DIMENSIONS",
    "decision_conditions",
    "delete_counters_before",
    "delete_decisions_before",
    "get_decision",
    "list_decisions",
    "load_counters",
    "usage_totals",
]

GROUP_DIMENSIONS: Final = ("hour", "day", *DIMENSIONS)
_HALF = 10**9  # atto sums are split in two halves so that SQL SUM() cannot overflow a BIGINT


def load_counters(
    connection: Connection, live: Mapping[str, str] | None = None
) -> dict[CounterKey, CounterState]:
    """Settled amount of every (policy, member, window) counter, or with ``live`` (per policy
    id, its oldest live window key: ``domain.budgets.live_windows``) only of those policies'
    windows from that key on, filtered in SQL: start-up never reads old windows' history.
    Window keys are UTC ISO strings, so they compare chronologically."""
    table = schema.usage_counters
    query = select(
        table.c.policy_id,
        table.c.member,
        table.c.window_key,
        table.c.settled_units,
        table.c.settled_atto,
    )
    if live is not None:
        # One condition per distinct oldest key (as many as distinct intervals), not one
        # per policy: a long OR chain would hit SQLite's expression depth limit.
        policies_since: dict[str, list[str]] = {}
        for policy_id, since in live.items():
            policies_since.setdefault(since, []).append(policy_id)
        if not policies_since:
            return {}
        query = query.where(
            or_(
                *(
                    and_(table.c.window_key >= since, table.c.policy_id.in_(policy_ids))
                    for since, policy_ids in policies_since.items()
                )
            )
        )
    return {
        CounterKey(row.policy_id, row.member, row.window_key): CounterState(
            settled=from_parts(row.settled_units, row.settled_atto)
        )
        for row in connection.execute(query)
    }


def _decode(connection: Connection, rows: Sequence[RowMapping]) -> list[StoredDecision]:
    """Decode decision rows, loading the policy versions their evaluations refer to."""
    refs = decision_policy_refs(rows)
    policies = {}
    if refs:
        snapshots = schema.policy_snapshots
        query = select(snapshots.c.digest, snapshots.c.spec).where(snapshots.c.digest.in_(refs))
        policies = {row.digest: policy_from_snapshot(row.spec) for row in connection.execute(query)}
    return [decision_from_row(row, policies) for row in rows]


def get_decision(connection: Connection, decision_id: str) -> StoredDecision | None:
    table = schema.routing_decisions
    rows = connection.execute(select(table).where(table.c.id == decision_id)).mappings().all()
    decoded = _decode(connection, rows)
    return decoded[0] if decoded else None


def decision_conditions(filters: DecisionFilter) -> list[ColumnElement[bool]]:
    column = schema.routing_decisions.c
    conditions: list[ColumnElement[bool]] = []
    if filters.since is not None:
        conditions.append(column.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(column.created_at < filters.until)
    equal: dict[str, Any] = {
        "project": filters.project,
        "principal": filters.principal,
        "api_key": filters.api_key,
        "agent": filters.agent,
        "session": filters.session,
        "actual_model": filters.model,
        "provider": filters.provider,
        "mode": filters.mode,
        "task_class": filters.task_class,
        "routing_action": filters.routing_action,
        "status": filters.status,
    }
    conditions.extend(column[name] == value for name, value in equal.items() if value is not None)
    if filters.reason_code is not None:
        # The JSON array's text contains the quoted code; autoescape keeps '_' literal.
        codes = type_coerce(column.reason_codes, Text)
        conditions.append(codes.contains(f'"{filters.reason_code}"', autoescape=True))
    if filters.settled is not None:
        settled_at = column.settled_at
        conditions.append(settled_at.is_not(None) if filters.settled else settled_at.is_(None))
    return conditions


def list_decisions(
    connection: Connection, limit: int = 100, filters: DecisionFilter | None = None, offset: int = 0
) -> list[StoredDecision]:
    """Newest first."""
    table = schema.routing_decisions
    query = select(table).order_by(table.c.created_at.desc(), table.c.id.desc())
    if filters is not None:
        query = query.where(*decision_conditions(filters))
    query = query.limit(limit).offset(offset)
    return _decode(connection, connection.execute(query).mappings().all())


def usage_totals(
    connection: Connection,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    group_by: Sequence[str] = (),
    **filters: str | None,
) -> list[UsageTotals]:
    """Sums of the rollups over ``[since, until)`` (whole UTC hours), grouped by ``group_by``
    dimensions, ordered by them. ``filters``: dimension → id (None: any).

    ``day`` groups by UTC day; for local days in another zone, group by ``hour`` and fold the
    hours (a UTC day is not a local day). The rollup family, and daily or hourly tables, are
    chosen by ``store.rollups``.
    """
    unknown = set(group_by) - set(GROUP_DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown group_by dimension(s): {sorted(unknown)}")
    unknown = set(filters) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown filter(s): {sorted(unknown)}")
    wanted = {name: value for name, value in filters.items() if value is not None}
    grouped = [d for d in group_by if d not in ("hour", "day")]
    family = choose_family({*grouped, *wanted})
    parts = family.parts(since, until, hourly="hour" in group_by)
    results = [
        totals
        for part in parts
        for totals in _part_totals(connection, part, group_by, grouped, wanted)
    ]
    if len(parts) > 1 or ("day" in group_by and "hour" not in group_by):
        results = _fold(results)
    if not results and not group_by:
        results = [UsageTotals()]
    return results


def _part_totals(
    connection: Connection,
    part: RollupPart,
    group_by: Sequence[str],
    grouped: Sequence[str],
    wanted: Mapping[str, str],
) -> list[UsageTotals]:
    table = part.table
    time = table.c[part.time_column]
    timed = any(d in group_by for d in ("hour", "day"))
    keys = [time.label("g_time")] if timed else []
    keys += [table.c[name].label(f"g_{name}") for name in grouped]
    sums = [func.sum(table.c[name]).label(name) for name in _SUMMED]
    for amount in schema.ROLLUP_AMOUNTS:
        atto = table.c[f"{amount}_atto"]
        sums += [
            func.sum(table.c[f"{amount}_units"]).label(f"{amount}_units"),
            func.sum(atto // _HALF).label(f"{amount}_hi"),
            func.sum(atto % _HALF).label(f"{amount}_lo"),
        ]
    query = select(*keys, *sums).where(*(table.c[n] == v for n, v in wanted.items()))
    if part.start is not None:
        query = query.where(time >= part.start)
    if part.end is not None:
        query = query.where(time < part.end)
    if keys:
        query = query.group_by(*keys).order_by(*keys)
    results: list[UsageTotals] = []
    for row in connection.execute(query).mappings():
        group: dict[str, Any] = {}
        for name in group_by:
            if name == "hour":
                group["hour"] = row["g_time"]
            elif name == "day":
                group["day"] = row["g_time"].date()
            else:
                group[name] = row[f"g_{name}"]
        results.append(
            UsageTotals(
                group=group,
                **{name: int(row[name] or 0) for name in schema.ROLLUP_COUNT_COLUMNS},
                cost_usd=_amount(row, "cost"),
                saved_usd=_amount(row, "saved"),
                extra_usd=_amount(row, "extra"),
                latency_ms_total=float(row["latency_ms_total"] or 0.0),
                latency_counts=tuple(int(row[c] or 0) for c in schema.LATENCY_COLUMNS),
            )
        )
    return results


_SUMMED: Final = (*schema.ROLLUP_COUNT_COLUMNS, "latency_ms_total", *schema.LATENCY_COLUMNS)


def _amount(row: Any, name: str) -> Decimal:
    units = int(row[f"{name}_units"] or 0)
    hi = int(row[f"{name}_hi"] or 0)
    lo = int(row[f"{name}_lo"] or 0)
    return from_atto(units * ATTO + hi * _HALF + lo)


def _fold(results: list[UsageTotals]) -> list[UsageTotals]:
    """Merge totals with equal groups (the hours of one day, a range's days and its edge
    hours), ordered by group."""
    merged: dict[tuple[Any, ...], UsageTotals] = {}
    for totals in results:
        key = tuple(totals.group.values())
        previous = merged.get(key)
        merged[key] = totals if previous is None else previous.plus(totals)
    return [merged[key] for key in sorted(merged)]


def delete_decisions_before(connection: Connection, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` of the oldest decisions created before ``before``."""
    table = schema.routing_decisions
    oldest = select(table.c.id).where(table.c.created_at < before).limit(limit)
    result = connection.execute(delete(table).where(table.c.id.in_(oldest.scalar_subquery())))
    return int(result.rowcount)


def delete_counters_before(connection: Connection, window_keys_before: str) -> int:
    table = schema.usage_counters
    result = connection.execute(delete(table).where(table.c.window_key < window_keys_before))
    return int(result.rowcount)
