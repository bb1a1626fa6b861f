"""The rollup families: which pre-aggregated table answers a usage query, and how the writer
keeps them all from one set of increments.

Every settled or refused request is counted once per family, in the same transaction:

* ``FINE``: project, principal, model, provider — by UTC hour and by UTC day;
* ``MODELS``: model, provider — by UTC hour and by UTC day (an unfiltered console's charts);
* ``PRINCIPALS``: project, principal — by UTC hour and by UTC day (rankings of both);
* ``AGENTS``: project, agent — by UTC hour and by UTC day.

A query reads the family with the fewest dimensions that still has every dimension it filters
or groups by (fewer dimensions, fewer rows). Without hourly groups, the whole UTC days of its
range come from the daily table and only the hours at either end from the hourly one: a page
over 90 days reads thousands of rows where the hourly rollup alone has hundreds of thousands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from operator import add
from typing import Any, Final

from sqlalchemy import Table

from spendgate.domain.latency import latency_bucket
from spendgate.domain.pricing import Usage
from spendgate.domain.routing import routing_difference
from spendgate.store import schema
from spendgate.store.money import ATTO, to_atto

__all__ = [
    "ADDED_COLUMNS",
    "DIMENSIONS",
    "FAMILIES",
    "VALUE_COLUMNS",
    "FineKey",
    "RollupDelta",
    "RollupFamily",
    "RollupPart",
    "choose_family",
    "family_rows",
]

# The dimensions of the finest key the writer aggregates on (after the UTC hour).
DIMENSIONS: Final = ("project", "principal", "model", "provider", "agent")
FineKey = tuple[datetime, str, str, str, str, str]  # hour, then DIMENSIONS ('' for none)
_DAY: Final = timedelta(days=1)


class RollupDelta:
    """What one batch adds to one rollup row: a flat list of sums (``_SUMS`` order), so that
    merging it into each family is one C-level ``map``."""

    __slots__ = ("sums",)

    def __init__(self, sums: list[Any] | None = None) -> None:
        self.sums: list[Any] = [0] * len(_SUMS) if sums is None else sums

    def count_request(self, *, blocked: bool, rerouted: bool, would_block: bool) -> None:
        sums = self.sums
        sums[_REQUESTS] += 1
        sums[_BLOCKED] += blocked
        sums[_REROUTED] += rerouted
        sums[_WOULD_BLOCK] += would_block

    def add_usage(
        self,
        usage: Usage,
        cost: Decimal | None,
        latency_ms: float | None,
        requested_cost: Decimal | None,
    ) -> None:
        sums = self.sums
        sums[_SETTLED] += 1
        saved, extra = routing_difference(requested_cost, cost)
        sums[_SAVED] += to_atto(saved)
        sums[_EXTRA] += to_atto(extra)
        sums[_INPUT] += usage.input_tokens
        sums[_OUTPUT] += usage.output_tokens
        sums[_CACHED] += usage.cached_input_tokens
        if cost is None:
            sums[_UNPRICED] += 1
        else:
            sums[_COST] += to_atto(cost)
        if latency_ms is not None:
            sums[_LATENCY_TOTAL] += latency_ms
            sums[_LATENCY_AT + latency_bucket(latency_ms)] += 1

    def values(self) -> list[Any]:
        """The row's values in ``VALUE_COLUMNS`` order (amounts split into units and atto)."""
        sums = self.sums
        values = sums[:_COST]
        values += sums[_LATENCY_AT:]
        for at in (_COST, _SAVED, _EXTRA):
            values += divmod(sums[at], ATTO)
        return values


# The sums a delta keeps, in order (amounts in atto, split only when written).
_SUMS: Final = (
    *schema.ROLLUP_COUNT_COLUMNS, "latency_ms_total", "cost", "saved", "extra",
    *schema.LATENCY_COLUMNS,
)  # fmt: skip
_REQUESTS, _SETTLED, _BLOCKED, _WOULD_BLOCK, _REROUTED, _UNPRICED, _INPUT, _OUTPUT, _CACHED = (
    _SUMS.index(name) for name in schema.ROLLUP_COUNT_COLUMNS
)
_LATENCY_TOTAL, _COST, _SAVED, _EXTRA = (
    _SUMS.index(name) for name in ("latency_ms_total", "cost", "saved", "extra")
)
_LATENCY_AT: Final = _SUMS.index(schema.LATENCY_COLUMNS[0])
# The columns ``RollupDelta.values`` fills, after a table's key columns.
VALUE_COLUMNS: Final = (
    *_SUMS[:_COST],
    *schema.LATENCY_COLUMNS,
    *(f"{amount}_{part}" for amount in schema.ROLLUP_AMOUNTS for part in ("units", "atto")),
)
ADDED_COLUMNS: Final = (*_SUMS[:_COST], *schema.LATENCY_COLUMNS)


@dataclass(frozen=True, slots=True)
class RollupPart:
    """One table read over ``[start, end)`` (None: unbounded) of a query's range."""

    table: Table
    time_column: str
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True, slots=True)
class RollupFamily:
    dimensions: tuple[str, ...]
    hourly: Table
    daily: Table | None = None

    @property
    def tables(self) -> tuple[tuple[Table, str], ...]:
        hourly = ((self.hourly, "hour_start"),)
        return hourly if self.daily is None else (*hourly, (self.daily, "day_start"))

    def parts(
        self, start: datetime | None, end: datetime | None, *, hourly: bool
    ) -> list[RollupPart]:
        """The reads that cover ``[start, end)`` (both on whole UTC hours, or None): whole UTC
        days from the daily table unless ``hourly`` buckets are asked for, the rest by hour."""
        if hourly or self.daily is None:
            return [RollupPart(self.hourly, "hour_start", start, end)]
        first_day = None if start is None else _ceil_day(start)
        last_day = None if end is None else _floor_day(end)
        if first_day is not None and last_day is not None and first_day >= last_day:
            return [RollupPart(self.hourly, "hour_start", start, end)]
        parts = [RollupPart(self.daily, "day_start", first_day, last_day)]
        if start is not None and first_day is not None and start < first_day:
            parts.insert(0, RollupPart(self.hourly, "hour_start", start, first_day))
        if end is not None and last_day is not None and last_day < end:
            parts.append(RollupPart(self.hourly, "hour_start", last_day, end))
        return parts

    def key(self, fine: FineKey, daily: bool) -> tuple[Any, ...]:
        hour = fine[0]
        start = hour.replace(hour=0) if daily else hour
        return (start, *(fine[1 + _POSITION[d]] for d in self.dimensions))


_POSITION: Final = {name: index for index, name in enumerate(DIMENSIONS)}

FINE: Final = RollupFamily(
    ("project", "principal", "model", "provider"), schema.usage_rollups, schema.usage_rollups_daily
)
MODELS: Final = RollupFamily(
    ("model", "provider"), schema.usage_rollups_models, schema.usage_rollups_models_daily
)
PRINCIPALS: Final = RollupFamily(
    ("project", "principal"),
    schema.usage_rollups_principals,
    schema.usage_rollups_principals_daily,
)
AGENTS: Final = RollupFamily(
    ("project", "agent"), schema.usage_rollups_agents, schema.usage_rollups_agents_daily
)
FAMILIES: Final = (MODELS, PRINCIPALS, AGENTS, FINE)  # fewest dimensions first


def choose_family(needed: Iterable[str]) -> RollupFamily:
    """The family with the fewest dimensions that has all of ``needed``."""
    wanted = set(needed)
    for family in FAMILIES:
        if wanted <= set(family.dimensions):
            return family
    raise ValueError(f"no rollup has the dimensions {sorted(wanted)}")


def family_rows(
    deltas: Mapping[FineKey, RollupDelta],
) -> Iterable[tuple[Table, tuple[str, ...], list[list[Any]]]]:
    """For each rollup table: its key columns and the rows a batch adds to it (key values,
    then ``VALUE_COLUMNS``), ``deltas`` summed per key of the table."""
    for family in FAMILIES:
        for table, time_column in family.tables:
            daily = time_column == "day_start"
            merged: dict[tuple[Any, ...], list[Any]] = {}
            for fine, delta in deltas.items():
                key = family.key(fine, daily)
                previous = merged.get(key)
                # A new list when summing: a fine delta's own list serves several families.
                merged[key] = (
                    delta.sums if previous is None else list(map(add, previous, delta.sums))
                )
            keys = (time_column, *family.dimensions)
            rows = [[*key, *RollupDelta(sums).values()] for key, sums in merged.items()]
            yield table, keys, rows


def _floor_day(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_day(at: datetime) -> datetime:
    floor = _floor_day(at)
    return floor if floor == at else floor + _DAY
