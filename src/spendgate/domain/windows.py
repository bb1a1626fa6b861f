"""Budget windows: calendar (hourly/daily/weekly/monthly in an IANA timezone) and rolling.

All instants are timezone-aware; windows are half-open ``[start, end)`` in absolute time.
Calendar boundaries are local wall-clock boundaries, so a daily window across a DST change
lasts 23 or 25 hours. A rolling window of duration ``d`` is counted in buckets of
``bucket_width(d)``; it covers the buckets overlapping ``(at - d, at]``, so it may include up to
one bucket more than ``d`` (counting slightly too much, never too little).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = [
    "Interval",
    "IntervalKind",
    "Window",
    "bucket_width",
    "counter_buckets",
    "window_for",
]


class IntervalKind(StrEnum):
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    ROLLING = "rolling"


@dataclass(frozen=True, slots=True)
class Interval:
    kind: IntervalKind
    timezone: str = "UTC"
    duration: timedelta | None = None  # rolling only

    def __post_init__(self) -> None:
        if self.kind is IntervalKind.ROLLING:
            if self.duration is None or self.duration <= timedelta(0):
                raise ValueError("a rolling interval needs a positive duration")
        elif self.duration is not None:
            raise ValueError("only a rolling interval takes a duration")
        _zone(self.timezone)  # raises ZoneInfoNotFoundError for an unknown timezone

    def __str__(self) -> str:
        if self.kind is IntervalKind.ROLLING:
            return f"rolling {self.duration}"
        if self.timezone == "UTC":
            return self.kind.value
        return f"{self.kind.value} ({self.timezone})"


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        """Stable identifier of the window (its UTC start), used as a counter key."""
        return self.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def window_for(interval: Interval, at: datetime) -> Window:
    """The window of ``interval`` containing instant ``at`` (aware)."""
    if at.tzinfo is None:
        raise ValueError("window_for needs an aware datetime")
    if interval.kind is IntervalKind.ROLLING:
        assert interval.duration is not None
        buckets = counter_buckets(interval, at)
        return Window(buckets[0].start, buckets[-1].end)
    zone = _zone(interval.timezone)
    local = at.astimezone(zone)
    if interval.kind is IntervalKind.HOURLY:
        # Floor in UTC-offset-aware terms: the local hour, keeping the offset in force now.
        start_utc = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        if start_utc > at:  # pragma: no cover - only in zones with sub-hour DST shifts
            start_utc -= timedelta(hours=1)
        return Window(start_utc, start_utc + timedelta(hours=1))
    if interval.kind is IntervalKind.DAILY:
        start_day = local.date()
        end_day = start_day + timedelta(days=1)
    elif interval.kind is IntervalKind.WEEKLY:
        start_day = local.date() - timedelta(days=local.weekday())
        end_day = start_day + timedelta(days=7)
    else:
        start_day = local.date().replace(day=1)
        end_day = (start_day + timedelta(days=32)).replace(day=1)
    return Window(_local_midnight(start_day.year, start_day.month, start_day.day, zone),
                  _local_midnight(end_day.year, end_day.month, end_day.day, zone))


def _local_midnight(year: int, month: int, day: int, zone: ZoneInfo) -> datetime:
    """The first instant of a local day (midnight, or the end of a DST gap at midnight)."""
    naive = datetime(year, month, day)
    candidate = naive.replace(tzinfo=zone).astimezone(UTC)
    # A gap at midnight (e.g. America/Santiago) maps to an instant whose local date differs.
    if candidate.astimezone(zone).replace(tzinfo=None) != naive:
        candidate = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return candidate


def bucket_width(duration: timedelta) -> timedelta:
    """Width of the counter buckets of a rolling window: 1/24 of it, whole minutes, ≥ 1 min."""
    minutes = max(1, int(duration.total_seconds() // 60 // 24))
    return timedelta(minutes=minutes)


def counter_buckets(interval: Interval, at: datetime) -> tuple[Window, ...]:
    """The counter buckets a request at ``at`` is checked against.

    A calendar interval has one bucket, its window. A rolling interval has the buckets that
    overlap ``(at - duration, at]``; usage is recorded in the last of them.
    """
    if interval.kind is not IntervalKind.ROLLING:
        return (window_for(interval, at),)
    assert interval.duration is not None
    width = bucket_width(interval.duration)
    epoch_seconds = int(at.timestamp())
    width_seconds = int(width.total_seconds())
    last_start = datetime.fromtimestamp(epoch_seconds - epoch_seconds % width_seconds, UTC)
    first_start = last_start
    lower = at - interval.duration
    while first_start > lower:
        first_start -= width
    count = int((last_start - first_start) / width) + 1
    return tuple(
        Window(first_start + i * width, first_start + (i + 1) * width) for i in range(count)
    )
