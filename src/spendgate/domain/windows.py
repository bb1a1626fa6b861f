"""Budget windows: calendar (hourly/daily/weekly/monthly in an IANA timezone) and rolling.

All instants are timezone-aware; windows are half-open ``[start, end)`` in absolute time and
are returned in UTC. The result depends only on the instant, never on the tzinfo it carries.

Calendar windows follow the local wall clock of the interval's timezone:

- daily / weekly / monthly windows start at the first instant of a local day (midnight; the
  end of the DST gap on days whose midnight is skipped, e.g. America/Santiago, whose clocks
  jump from 00:00 to 01:00); weekly windows start on Monday, monthly on the 1st. A day across
  a DST change lasts 23 or 25 hours. If a clock steps back across midnight (St. John's before
  2011: 00:01 back to 23:01), the repeated stretch belongs to the new day, so windows never
  overlap and a day is never counted twice.
- hourly windows start whenever the local clock shows a whole hour (``HH:00:00``), so in
  zones offset by 30 or 45 minutes (Asia/Kolkata, Asia/Kathmandu, Pacific/Chatham) they align
  to local hours, not UTC hours. With whole-hour DST shifts every hourly window lasts 60
  minutes (the repeated autumn hour is two windows). Australia/Lord_Howe shifts by 30 minutes:
  its clock never shows 02:00 on the spring night (01:59:59 → 02:30) nor twice on the autumn
  night (01:59:59 → 01:30), so the window holding the shift lasts 90 minutes both times
  (spring 01:00 LHST–03:00 LHDT, autumn 01:00 LHDT–02:00 LHST). We prefer that to windows
  starting at 02:30 or 01:30, which no operator would call "an hour"; budgets only ever see a
  window that is 50% longer once a season.

A rolling window of duration ``d`` is counted in UTC buckets of ``bucket_width(d)`` aligned to
the Unix epoch: the buckets from the one holding ``at - d`` to the one holding ``at``. They
cover ``[at - d, at]`` and reach back less than one bucket further (counting slightly too
much, never too little).

Offset transitions are located with ``ZoneInfo`` lookups only (bisection over whole seconds,
which is where tzdata puts them); we assume a zone never changes its offset twice within one
hour, or twice within two days around a skipped midnight, which holds for all of tzdata.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = [
    "MAX_ROLLING",
    "MIN_ROLLING",
    "Interval",
    "IntervalKind",
    "Window",
    "bucket_width",
    "counter_buckets",
    "counter_span",
    "oldest_live_key",
    "rolling_duration_problem",
    "window_for",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)
_SECOND = timedelta(seconds=1)
_MICROSECOND = timedelta(microseconds=1)

# A rolling window lasts from a minute (its buckets are whole minutes) to a leap year. Longer
# ones are no budget anyone means, and far longer ones reach back before year 1, where the
# window's arithmetic overflows on every request in the budget's scope.
MIN_ROLLING = timedelta(minutes=1)
MAX_ROLLING = timedelta(days=366)


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
        # Accept the plain string too ("daily"): identity checks below need the enum member.
        object.__setattr__(self, "kind", IntervalKind(self.kind))
        if self.kind is IntervalKind.ROLLING:
            if self.duration is None or self.duration <= timedelta(0):
                raise ValueError("a rolling interval needs a positive duration")
        elif self.duration is not None:
            raise ValueError("only a rolling interval takes a duration")
        _zone(self.timezone)  # raises ZoneInfoNotFoundError for an unknown timezone

    def __str__(self) -> str:
        if self.kind is IntervalKind.ROLLING:
            assert self.duration is not None
            return f"rolling {_compact_duration(self.duration)}"
        if self.timezone == "UTC":
            return self.kind.value
        return f"{self.kind.value} ({self.timezone})"


def rolling_duration_problem(duration: timedelta) -> str | None:
    """Why ``duration`` cannot be a rolling window's, or ``None`` when it can."""
    if duration < MIN_ROLLING:
        return "a rolling window lasts at least 1 minute"
    if duration > MAX_ROLLING:
        return (
            f"a rolling window lasts at most {MAX_ROLLING.days} days "
            f"(got {_compact_duration(duration)})"
        )
    return None


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime
    # Stable identifier of the window (its UTC start), used as a counter key. Computed once:
    # windows are memoised and their keys are read on every request.
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


# The window (buckets) each interval returned last. Windows tile time, so the window holding
# ``at`` is unique and a hit is exact; on the hot path nearly every call is a hit (policies
# share intervals, and a window lasts an hour or more, a bucket a minute or more).
# Calendar windows are kept as one-bucket tuples so ``counter_buckets`` returns the very same
# object while the window lasts (callers memoise per bucket tuple by identity).
_LAST_WINDOW: dict[Interval, tuple[Window]] = {}
_LAST_BUCKETS: dict[Interval, tuple[datetime, datetime, tuple[Window, ...]]] = {}
_LAST_WINDOW_MAX = 1024


def window_for(interval: Interval, at: datetime) -> Window:
    """The window of ``interval`` containing instant ``at`` (aware)."""
    if at.tzinfo is None:
        raise ValueError("window_for needs an aware datetime")
    if interval.kind is IntervalKind.ROLLING:
        buckets = counter_buckets(interval, at)
        return Window(buckets[0].start, buckets[-1].end)
    return _calendar_buckets(interval, at)[0]


def _calendar_buckets(interval: Interval, at: datetime) -> tuple[Window]:
    cached = _LAST_WINDOW.get(interval)
    if cached is not None and cached[0].start <= at < cached[0].end:  # aware: instants
        return cached
    at = at.astimezone(UTC)
    zone = _zone(interval.timezone)
    if interval.kind is IntervalKind.HOURLY:
        window = Window(_hour_start(zone, at), _hour_end(zone, at))
    else:
        window = _calendar_window(interval.kind, zone, at)
    if len(_LAST_WINDOW) >= _LAST_WINDOW_MAX:
        _LAST_WINDOW.clear()
    buckets = (window,)
    _LAST_WINDOW[interval] = buckets
    return buckets


def bucket_width(duration: timedelta) -> timedelta:
    """Width of the counter buckets of a rolling window: 1/24 of it, whole minutes, ≥ 1 min."""
    minutes = max(1, duration // timedelta(minutes=1) // 24)
    return timedelta(minutes=minutes)


def counter_buckets(interval: Interval, at: datetime) -> tuple[Window, ...]:
    """The counter buckets a request at ``at`` is checked against.

    A calendar interval has one bucket, its window. A rolling interval has the buckets from the
    one holding ``at - duration`` to the one holding ``at``; usage is recorded in the last.
    """
    return counter_span(interval, at)[2]


def counter_span(interval: Interval, at: datetime) -> tuple[datetime, datetime, tuple[Window, ...]]:
    """``counter_buckets(interval, at)`` with the instants it answers for: the same buckets
    hold for every instant in ``[valid_from, valid_until)``, which lets callers memoise what
    they derive from the buckets and check only the instant on the hot path."""
    if at.tzinfo is None:
        raise ValueError("counter_buckets needs an aware datetime")
    if interval.kind is not IntervalKind.ROLLING:
        window = _calendar_buckets(interval, at)
        return window[0].start, window[0].end, window
    cached = _LAST_BUCKETS.get(interval)
    if cached is not None and cached[0] <= at < cached[1]:
        return cached
    assert interval.duration is not None
    duration, width = interval.duration, bucket_width(interval.duration)
    # Bucket indices from the epoch. Timedelta arithmetic is exact to the microsecond and
    # floors correctly before 1970 (a float timestamp does neither); the difference of two
    # aware datetimes is absolute time whatever zone ``at`` carries (``at - duration`` alone
    # would be wall-clock arithmetic in a DST zone).
    since_epoch = at - _EPOCH
    first, last = (since_epoch - duration) // width, since_epoch // width
    buckets = tuple(
        Window(_EPOCH + index * width, _EPOCH + (index + 1) * width)
        for index in range(first, last + 1)
    )
    # The same buckets answer every instant whose first and last bucket are these.
    valid_from = max(buckets[-1].start, buckets[0].start + duration)
    valid_until = min(buckets[-1].end, buckets[0].end + duration)
    if len(_LAST_BUCKETS) >= _LAST_WINDOW_MAX:
        _LAST_BUCKETS.clear()
    entry = (valid_from, valid_until, buckets)
    _LAST_BUCKETS[interval] = entry
    return entry


def oldest_live_key(interval: Interval, at: datetime) -> str:
    """The key of the oldest counter bucket a request at ``at`` still reads. Keys are UTC
    starts in ISO form, so they sort chronologically: a counter with an older key (a calendar
    window that ended, a rolling bucket older than the duration) is never read again."""
    return counter_buckets(interval, at)[0].key


# --- calendar days -----------------------------------------------------------------------


def _calendar_window(kind: IntervalKind, zone: ZoneInfo, at: datetime) -> Window:
    day = at.astimezone(zone).date()
    if kind is IntervalKind.DAILY:
        first = day
    elif kind is IntervalKind.WEEKLY:
        first = day - timedelta(days=day.weekday())
    else:
        first = day.replace(day=1)
    following = _next_period(kind, first)
    start, end = _day_start(zone, first), _day_start(zone, following)
    # ``at`` can read as the earlier period after the clock stepped back across midnight;
    # that stretch comes after the new period's start, so it belongs to the new period.
    while end <= at:
        following = _next_period(kind, following)
        start, end = end, _day_start(zone, following)
    return Window(start, end)


def _next_period(kind: IntervalKind, first: date) -> date:
    if kind is IntervalKind.DAILY:
        return first + timedelta(days=1)
    if kind is IntervalKind.WEEKLY:
        return first + timedelta(days=7)
    return (first + timedelta(days=32)).replace(day=1)


def _day_start(zone: ZoneInfo, day: date) -> datetime:
    """The first instant whose local date is ``day`` or later (UTC)."""
    midnight = datetime(day.year, day.month, day.day)
    # fold=0 picks the first of two midnights, and inside a gap applies the offset from
    # before the transition, which lands at or after the transition.
    instant = midnight.replace(tzinfo=zone).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == midnight:
        return instant
    # Midnight is skipped: the day starts when the clock jumps over it, less than two days
    # (the largest gap in tzdata is one day: Pacific/Apia, 2011) before ``instant``.
    return _first_instant(instant - timedelta(days=2), instant, _date_reached(zone, day))


# --- calendar hours ----------------------------------------------------------------------


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # ZoneInfo always has one
    return offset


def _into_hour(instant: datetime, offset: timedelta) -> timedelta:
    """How far past a whole hour the local clock is at ``instant``, read with ``offset``."""
    return (instant + offset - _EPOCH) % _HOUR


def _hour_start(zone: ZoneInfo, at: datetime) -> datetime:
    """The last instant ≤ ``at`` at which the local clock shows a whole hour."""
    point = at
    offset = _offset(zone, point)
    while True:
        candidate = point - _into_hour(point, offset)
        if _offset(zone, candidate) == offset:
            return candidate
        # The offset changed in (candidate, point]: no whole hour since that transition
        # (candidate was the last one at this offset), so look before it.
        transition = _first_instant(candidate, point, _offset_is(zone, offset))
        point = transition - _MICROSECOND
        offset = _offset(zone, point)


def _hour_end(zone: ZoneInfo, at: datetime) -> datetime:
    """The first instant > ``at`` at which the local clock shows a whole hour."""
    point = at
    offset = _offset(zone, point)
    while True:
        candidate = point + (_HOUR - _into_hour(point, offset))
        if _offset(zone, candidate) == offset:
            return candidate
        # The offset changes in (point, candidate]; the transition itself is a boundary when
        # the clock shows a whole hour right after it (e.g. 02:00 → 03:00).
        transition = _first_instant(point, candidate, _offset_is_not(zone, offset))
        offset = _offset(zone, transition)
        if _into_hour(transition, offset) == timedelta(0):
            return transition
        point = transition


# --- transitions -------------------------------------------------------------------------


def _offset_is(zone: ZoneInfo, offset: timedelta) -> Callable[[datetime], bool]:
    return lambda instant: _offset(zone, instant) == offset


def _offset_is_not(zone: ZoneInfo, offset: timedelta) -> Callable[[datetime], bool]:
    return lambda instant: _offset(zone, instant) != offset


def _date_reached(zone: ZoneInfo, day: date) -> Callable[[datetime], bool]:
    return lambda instant: instant.astimezone(zone).date() >= day


def _first_instant(low: datetime, high: datetime, reached: Callable[[datetime], bool]) -> datetime:
    """The first whole second in ``(low, high]`` where ``reached`` holds, by bisection.

    ``reached`` is false at ``low`` and true at ``high``, and flips once, at an offset
    transition, which tzdata always puts on a whole second.
    """
    lo = (low - _EPOCH) // _SECOND  # false here: no transition in (lo, low]
    hi = (high - _EPOCH) // _SECOND  # true here: no transition in (hi, high]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if reached(_EPOCH + mid * _SECOND):
            hi = mid
        else:
            lo = mid
    return _EPOCH + hi * _SECOND


def _compact_duration(duration: timedelta) -> str:
    """``7d``, ``90m``, ``1d12h``: the way config spells durations."""
    seconds = int(duration.total_seconds())
    parts: list[str] = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or str(duration)
