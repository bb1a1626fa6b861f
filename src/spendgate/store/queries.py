"""Read side of the journal: startup and admin queries, never run per request."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    RowMapping,
    Text,
    and_,
    cast,
    delete,
    func,
    or_,
    select,
    type_coerce,
)

from spendgate.domain.budgets import CounterKey, CounterState
from spendgate.store import schema
from spendgate.store.codec import decision_from_row, decision_policy_refs
from spendgate.store.money import ATTO, from_atto
from spendgate.store.policy_codec import policy_from_snapshot
from spendgate.store.records import NO_LATENCIES, DecisionFilter, StoredDecision, UsageTotals
from spendgate.store.rollups import DIMENSIONS, RollupPart, choose_family

__all__ = [
    "GROUP_DIMENSIONS",
    "decision_conditions",
    "delete_counters_before",
    "delete_decisions_before",
    "get_decision",
    "list_decisions",
    "load_counters",
    "settled_since",
    "usage_totals",
]

GROUP_DIMENSIONS: Final = ("hour", "day", *DIMENSIONS)
_HALF = 10**9  # atto sums are split in two halves so that SQL SUM() cannot overflow a BIGINT


def settled_since(connection: Connection, since: datetime) -> list[str]:
    """The ids of the decisions settled (journaled with their usage) at or after ``since``.
    Bounded by their creation a day earlier, so the creation index narrows the scan (a
    request lasts less than a day)."""
    table = schema.routing_decisions
    query = select(table.c.id).where(
        table.c.created_at >= since - timedelta(days=1), table.c.settled_at >= since
    )
    return list(connection.execute(query).scalars())


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
            int(row.settled_units) * ATTO + int(row.settled_atto)
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
    buckets: Sequence[datetime] = (),
    histogram: bool = False,
    **filters: str | None,
) -> list[UsageTotals]:
    """Sums of the rollups over ``[since, until)`` (whole UTC hours), grouped by ``group_by``
    dimensions, ordered by them. ``filters``: dimension → id (None: any).

    ``day`` groups by UTC day; ``bucket`` by the index of the bucket among ``buckets`` (their
    starts, on whole UTC hours, ascending: local days in any zone are summed from their own
    hours, never a UTC day relabelled). The rollup family, and daily or hourly tables, are
    chosen by ``store.rollups``. ``histogram``: read the latency histogram too (it is most of
    the columns: only when a percentile is shown).
    """
    sums = _sums(connection, since, until, group_by, buckets, histogram, filters)
    totals = [
        _totals(dict(zip(group_by, key, strict=True)), sums[key], histogram) for key in sorted(sums)
    ]
    if not totals and not group_by:
        totals = [UsageTotals(latency_counts=NO_LATENCIES if histogram else None)]
    return totals


def keyed_totals(
    connection: Connection,
    since: datetime | None,
    until: datetime | None,
    *,
    group_by: Sequence[str],
    buckets: Sequence[datetime] = (),
    **filters: str | None,
) -> dict[tuple[Any, ...], UsageTotals]:
    """``usage_totals`` keyed by their group's values, each with an empty ``group``: what a
    timeline indexes by bucket (thousands of points, built once each)."""
    sums = _sums(connection, since, until, group_by, buckets, False, filters)
    return {key: _totals({}, values, False) for key, values in sums.items()}


def _sums(
    connection: Connection,
    since: datetime | None,
    until: datetime | None,
    group_by: Sequence[str],
    buckets: Sequence[datetime],
    histogram: bool,
    filters: Mapping[str, str | None],
) -> dict[tuple[Any, ...], list[Any]]:
    unknown = set(group_by) - {*GROUP_DIMENSIONS, "bucket"}
    if unknown:
        raise ValueError(f"unknown group_by dimension(s): {sorted(unknown)}")
    unknown = set(filters) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown filter(s): {sorted(unknown)}")
    wanted = {name: value for name, value in filters.items() if value is not None}
    grouped = [d for d in group_by if d not in _TIME_GROUPS]
    family = choose_family({*grouped, *wanted})
    by_day = all(start.hour == 0 for start in buckets) if "bucket" in group_by else True
    parts = family.parts(since, until, hourly="hour" in group_by or not by_day)
    if sum(d in _TIME_GROUPS for d in group_by) > 1:
        raise ValueError("group by one of hour, day and bucket at most")
    sums: dict[tuple[Any, ...], list[Any]] = {}
    summed = _SUMMED_WITH_HISTOGRAM if histogram else _SUMMED
    for part in parts:
        if "bucket" not in group_by:
            _add_part(connection, part, group_by, grouped, wanted, None, summed, sums)
            continue
        assert until is not None, "buckets need the range's end"
        for run in _runs(buckets, until):
            start = run.start if part.start is None else max(part.start, run.start)
            end = run.end if part.end is None else min(part.end, run.end)
            if start < end:
                clipped = RollupPart(part.table, part.time_column, start, end)
                _add_part(connection, clipped, group_by, grouped, wanted, run, summed, sums)
    return sums


_TIME_GROUPS: Final = ("hour", "day", "bucket")


@dataclass(frozen=True, slots=True)
class _Run:
    """Buckets of one length back to back (local days between DST changes, say): the
    database numbers each row's bucket itself, and returns one row per bucket, not per hour."""

    first: int  # index of its first bucket
    start: datetime
    end: datetime
    seconds: int  # the length of each

    def number(self, connection: Connection, time: ColumnElement[Any]) -> ColumnElement[Any]:
        """The bucket index of ``time`` (a whole hour or day in the run), computed in SQL."""
        if connection.dialect.name == "sqlite":
            epoch = cast(func.strftime("%s", time), BigInteger)
        else:
            epoch = cast(func.extract("epoch", time), BigInteger)
        return (epoch - int(self.start.timestamp())) // self.seconds + self.first


def _runs(buckets: Sequence[datetime], until: datetime) -> list[_Run]:
    """``buckets`` (starts, ascending; the last ends at ``until``) as runs of equal lengths."""
    ends = [*buckets[1:], until]
    runs: list[_Run] = []
    for index, (start, end) in enumerate(zip(buckets, ends, strict=True)):
        seconds = int((end - start).total_seconds())
        last = runs[-1] if runs else None
        if last is not None and last.seconds == seconds and last.end == start:
            runs[-1] = _Run(last.first, last.start, end, seconds)
        else:
            runs.append(_Run(index, start, end, seconds))
    return runs


def _add(sums: dict[tuple[Any, ...], list[Any]], key: tuple[Any, ...], values: list[Any]) -> None:
    previous = sums.get(key)
    if previous is None:
        sums[key] = list(values)
        return
    for index, value in enumerate(values):
        previous[index] += value


# What is summed, in this order, then each amount (in atto).
_SUMMED: Final = (*schema.ROLLUP_COUNT_COLUMNS, "latency_ms_total")
_SUMMED_WITH_HISTOGRAM: Final = (*_SUMMED, *schema.LATENCY_COLUMNS)


def _add_part(
    connection: Connection,
    part: RollupPart,
    group_by: Sequence[str],
    grouped: Sequence[str],
    wanted: Mapping[str, str],
    run: _Run | None,
    summed: Sequence[str],
    sums: dict[tuple[Any, ...], list[Any]],
) -> None:
    """Add one table's sums over its part of the range to ``sums`` (group key → numbers, in
    ``summed`` order then each amount in atto). Folding in integers, not Decimal, keeps a
    range of thousands of hourly rows cheap."""
    table = part.table
    time = table.c[part.time_column]
    timed = any(d in group_by for d in _TIME_GROUPS)
    keys: list[ColumnElement[Any]] = []
    if timed:
        keys.append(time if run is None else run.number(connection, time))
    keys += [table.c[name] for name in grouped]
    columns = [func.sum(table.c[name]) for name in summed]
    for amount in schema.ROLLUP_AMOUNTS:
        atto = table.c[f"{amount}_atto"]
        columns += [
            func.sum(table.c[f"{amount}_units"]),
            func.sum(atto // _HALF),
            func.sum(atto % _HALF),
        ]
    query = select(*keys, *columns).where(*(table.c[n] == v for n, v in wanted.items()))
    if part.start is not None:
        query = query.where(time >= part.start)
    if part.end is not None:
        query = query.where(time < part.end)
    if keys:
        query = query.group_by(*keys)
    width = len(keys)
    # Where each part of the group key comes from: the time column (as the hour, its UTC day,
    # or the bucket's index the query computed) or a dimension column.
    time_key: dict[str, Callable[[Any], Any]] = {
        "hour": lambda at: at,
        "day": lambda at: at.date(),
        "bucket": int,
    }
    column_of = {name: timed + index for index, name in enumerate(grouped)}
    for row in connection.execute(query):
        key = tuple(
            time_key[name](row[0]) if name in time_key else row[column_of[name]]
            for name in group_by
        )
        values = [value or 0 for value in row[width : width + len(summed)]]
        amounts = row[width + len(summed) :]
        for index in range(0, len(amounts), 3):
            units, hi, lo = amounts[index : index + 3]
            values.append((units or 0) * ATTO + (hi or 0) * _HALF + (lo or 0))
        _add(sums, key, values)


def _totals(group: dict[str, Any], values: Sequence[Any], histogram: bool) -> UsageTotals:
    counts = len(schema.ROLLUP_COUNT_COLUMNS)
    cost, saved, extra = values[-3:]
    return UsageTotals(
        group=group,
        **{name: int(v) for name, v in zip(schema.ROLLUP_COUNT_COLUMNS, values, strict=False)},
        cost_usd=from_atto(cost),
        saved_usd=from_atto(saved),
        extra_usd=from_atto(extra),
        latency_ms_total=float(values[counts]),
        latency_counts=tuple(int(v) for v in values[counts + 1 : -3]) if histogram else None,
    )


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
