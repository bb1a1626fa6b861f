"""Usage time ranges and timeline buckets: pure rules, the current time passed in.

A usage query covers a half-open range ``[start, end)`` of instants. A timeline splits it into
*calendar* buckets of a timezone: local hours or local days, as ``windows.window_for`` defines
them (so a local day across a DST change lasts 23 or 25 hours, and hours in zones offset by 30
or 45 minutes start at local ``HH:00``). The range is widened to whole buckets, because a partly
covered bucket would be mistaken for a quiet one.

The journal's rollups are kept per UTC hour. They can answer a range only if every boundary of
it is a whole UTC hour (``on_utc_hours``); a local day is then the sum of its UTC hours, never a
UTC day relabelled. In zones whose offset is not a whole number of hours, local
hours and days start mid-way through a UTC hour, and the raw decisions must be used instead.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from spendgate.domain.windows import Interval, IntervalKind, Window, window_for

__all__ = [
    "MAX_BUCKETS",
    "MAX_SPAN",
    "Bucket",
    "TimeRange",
    "TimelineError",
    "bucket_index",
    "bucket_windows",
    "ceil_utc_hour",
    "on_utc_hours",
    "parse_instant",
    "parse_span",
    "resolve_range",
    "zone",
]

_HOUR = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Bounds that keep every computation (± a span, ± a day of bucket alignment) far from
# datetime's limits, and a timeline small enough to answer quickly.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)
MAX_SPAN: Final = timedelta(days=3660)
MAX_BUCKETS: Final = 10_000
DEFAULT_SPAN: Final = timedelta(hours=24)
_SPAN = re.compile(r"^\s*(\d{1,6})\s*([hdw])\s*$")
_SPAN_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


class TimelineError(ValueError):
    """A bad time parameter; ``param`` names it (``since``, ``until``, ``window``, ``tz``…)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


class Bucket(StrEnum):
    HOUR = "hour"
    DAY = "day"


@dataclass(frozen=True, slots=True)
class TimeRange:
    start: datetime  # aware, UTC
    end: datetime

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


def zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``; ``TimelineError`` (param ``tz``) if there is none."""
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise TimelineError("tz", f"unknown timezone {name!r} (use an IANA name)") from exc


def parse_span(text: str) -> timedelta:
    """``24h``, ``7d``, ``2w`` → a duration (at most ``MAX_SPAN``)."""
    match = _SPAN.match(text)
    if match is None:
        raise TimelineError("window", f"window {text!r}: expected a duration like 24h, 7d or 2w")
    span = int(match.group(1)) * _SPAN_UNITS[match.group(2)]
    if not timedelta(0) < span <= MAX_SPAN:
        raise TimelineError("window", f"window {text!r}: must be between 1h and {MAX_SPAN.days}d")
    return span


def parse_instant(text: str, param: str, default_zone: ZoneInfo) -> datetime:
    """ISO 8601 date or date-time. Without an offset it is read in ``default_zone`` (the
    timeline's ``tz``, else UTC): a bare ``2026-03-29`` means that local midnight."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise TimelineError(param, f"{param} {text!r}: expected ISO 8601") from exc
    if parsed.tzinfo is None:
        # fold=0: an ambiguous local time means its first occurrence.
        parsed = parsed.replace(tzinfo=default_zone)
    try:
        instant = parsed.astimezone(UTC)
    except OverflowError as exc:
        raise TimelineError(param, f"{param} {text!r} is out of range") from exc
    if not _EARLIEST <= instant <= _LATEST:
        raise TimelineError(param, f"{param} must be between 1970 and 9000")
    return instant


def ceil_utc_hour(at: datetime) -> datetime:
    """The first whole UTC hour at or after ``at``."""
    floor = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return floor if floor == at else floor + _HOUR


def resolve_range(
    since: datetime | None, until: datetime | None, span: timedelta | None, now: datetime
) -> TimeRange:
    """The range from explicit bounds and/or a span (``window``).

    With neither bound, the range ends at the end of the current UTC hour (so it is made of
    whole hours, which the rollups can answer) and reaches back ``span`` (default 24 h).
    """
    if since is not None and until is not None:
        if span is not None:
            raise TimelineError("window", "give window, or since and until, not all three")
        start, end = since, until
    elif since is not None:
        start, end = since, since + span if span is not None else ceil_utc_hour(now)
    else:
        end = until if until is not None else ceil_utc_hour(now)
        start = end - (span if span is not None else DEFAULT_SPAN)
    if start >= end:
        raise TimelineError("since", "since must be before until")
    if end - start > MAX_SPAN:
        raise TimelineError("since", f"the range may span at most {MAX_SPAN.days} days")
    return TimeRange(start.astimezone(UTC), end.astimezone(UTC))


def bucket_windows(bucket: Bucket, tz: ZoneInfo, span: TimeRange) -> list[Window]:
    """Contiguous calendar buckets of ``tz`` covering ``span``: the first holds ``span.start``,
    the last holds the instant just before ``span.end``."""
    interval = Interval(
        IntervalKind.HOURLY if bucket is Bucket.HOUR else IntervalKind.DAILY, tz.key
    )
    windows = [window_for(interval, span.start)]
    while windows[-1].end < span.end:
        if len(windows) >= MAX_BUCKETS:
            raise TimelineError(
                "bucket", f"more than {MAX_BUCKETS} {bucket.value} buckets: narrow the range"
            )
        windows.append(window_for(interval, windows[-1].end))
    return [Window(w.start.astimezone(UTC), w.end.astimezone(UTC)) for w in windows]


def on_utc_hours(windows: Sequence[Window]) -> bool:
    """Whether every boundary is a whole UTC hour (so sums of hourly rollups are exact)."""
    return all(
        (w.start - _EPOCH) % _HOUR == timedelta(0) and (w.end - _EPOCH) % _HOUR == timedelta(0)
        for w in windows
    )


def bucket_index(starts: Sequence[datetime], end: datetime, at: datetime) -> int | None:
    """Index of the bucket holding ``at``, given the buckets' sorted ``starts`` and the last
    one's ``end``; ``None`` outside them."""
    if not starts or at < starts[0] or at >= end:
        return None
    return bisect_right(starts, at) - 1
