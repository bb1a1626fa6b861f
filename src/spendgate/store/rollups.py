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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Table

from spendgate.domain.latency import LATENCY_EDGES_MS, latency_bucket
from spendgate.domain.pricing import Usage
from spendgate.domain.routing import routing_difference
from spendgate.store import schema
from spendgate.store.money import ATTO, to_atto

__all__ = [
    "DIMENSIONS",
    "FAMILIES",
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


@dataclass(slots=True)
class RollupDelta:
    """What one batch adds to one rollup row."""

    requests: int = 0
    settled: int = 0
    blocked: int = 0
    would_blocked: int = 0
    rerouted: int = 0
    unpriced: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_atto: int = 0
    saved_atto: int = 0
    extra_atto: int = 0
    latency_ms_total: float = 0.0
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_EDGES_MS) + 1))

    def add_usage(
        self,
        usage: Usage,
        cost: Decimal | None,
        latency_ms: float | None,
        requested_cost: Decimal | None,
    ) -> None:
        self.settled += 1
        saved, extra = routing_difference(requested_cost, cost)
        self.saved_atto += to_atto(saved)
        self.extra_atto += to_atto(extra)
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cached_input_tokens += usage.cached_input_tokens
        if cost is None:
            self.unpriced += 1
        else:
            self.cost_atto += to_atto(cost)
        if latency_ms is not None:
            self.latency_ms_total += latency_ms
            self.latency_counts[latency_bucket(latency_ms)] += 1

    def merge(self, other: RollupDelta) -> None:
        for name in _SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latency_counts = [
            a + b for a, b in zip(self.latency_counts, other.latency_counts, strict=True)
        ]

    def values(self) -> dict[str, Any]:
        row: dict[str, Any] = {name: getattr(self, name) for name in _COUNTED}
        for amount in schema.ROLLUP_AMOUNTS:
            row[f"{amount}_units"], row[f"{amount}_atto"] = divmod(
                getattr(self, f"{amount}_atto"), ATTO
            )
        row.update(zip(schema.LATENCY_COLUMNS, self.latency_counts, strict=True))
        return row


_COUNTED: Final = (*schema.ROLLUP_COUNT_COLUMNS, "latency_ms_total")
_SUMMED: Final = (*_COUNTED, *(f"{amount}_atto" for amount in schema.ROLLUP_AMOUNTS))


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
) -> Iterable[tuple[Table, tuple[str, ...], list[dict[str, Any]]]]:
    """For each rollup table: its key columns and the rows a batch adds (``deltas`` merged
    per key of the table)."""
    for family in FAMILIES:
        for table, time_column in family.tables:
            daily = time_column == "day_start"
            merged: dict[tuple[Any, ...], RollupDelta] = {}
            for fine, delta in deltas.items():
                key = family.key(fine, daily)
                into = merged.get(key)
                if into is None:
                    merged[key] = into = RollupDelta()
                into.merge(delta)
            keys = (time_column, *family.dimensions)
            rows = [{**dict(zip(keys, k, strict=True)), **d.values()} for k, d in merged.items()]
            yield table, keys, rows


def _floor_day(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_day(at: datetime) -> datetime:
    floor = _floor_day(at)
    return floor if floor == at else floor + _DAY
