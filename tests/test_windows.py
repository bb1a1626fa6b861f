"""Budget windows: Hypothesis properties over many IANA zones, and the DST cases by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendgate.domain import windows as windows_module
from spendgate.domain.windows import (
    MAX_ROLLING,
    MIN_ROLLING,
    Interval,
    IntervalKind,
    Window,
    bucket_width,
    counter_buckets,
    rolling_duration_problem,
    window_for,
)

US = timedelta(microseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NOW_UTC = datetime(2026, 12, 3, 8, 30, tzinfo=UTC)
CALENDAR = [IntervalKind.HOURLY, IntervalKind.DAILY, IntervalKind.WEEKLY, IntervalKind.MONTHLY]

# The zones the brief names, plus the oddest ones in tzdata: 24 h gaps (Apia, Kwajalein),
# midnight transitions (Havana, Beirut, Gaza), negative DST (Dublin), ±xx:30/45 offsets,
# 3 h jumps (Casey), 2 h DST (Troll), Ramadan DST pauses (Casablanca).
NAMED_ZONES = [
    "UTC",
    "Europe/Prague",
    "America/New_York",
    "America/Santiago",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/St_Johns",
    "Asia/Kathmandu",
    "Pacific/Apia",
    "Pacific/Kwajalein",
    "Pacific/Kiritimati",
    "America/Havana",
    "Asia/Beirut",
    "Asia/Gaza",
    "Europe/Dublin",
    "Australia/Eucla",
    "Pacific/Marquesas",
    "Asia/Tehran",
    "Antarctica/Casey",
    "Antarctica/Troll",
    "Africa/Casablanca",
    "America/Scoresbysund",
    "America/Asuncion",
    "Pacific/Easter",
    "Europe/Moscow",
    "America/Caracas",
    "Asia/Pyongyang",
]
ALL_ZONES = sorted(available_timezones())

zones = st.sampled_from(NAMED_ZONES) | st.sampled_from(ALL_ZONES)
instants = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


def next_transition(zone: str, after: datetime) -> datetime | None:
    """The first offset change after ``after`` within a year (test oracle: day steps, then
    bisection to the second), or None."""
    start_offset = offset(after, zone)
    low = after
    for days in range(1, 367):
        high = after + timedelta(days=days)
        if offset(high, zone) != start_offset:
            while high - low > timedelta(seconds=1):
                mid = low + (high - low) / 2
                if offset(mid, zone) == start_offset:
                    low = mid
                else:
                    high = mid
            return high.replace(microsecond=0)
        low = high
    return None


@st.composite
def near_transition(draw: st.DrawFn, zone: str) -> datetime:
    """An instant within a few hours of one of ``zone``'s offset changes (or anywhere, for
    zones without one near the drawn year)."""
    year = draw(st.integers(min_value=1900, max_value=2100))
    transition = next_transition(zone, datetime(year, 1, 1, tzinfo=UTC))
    if transition is None:
        return draw(instants)
    delta = draw(st.integers(min_value=-4 * 3600, max_value=4 * 3600))
    micro = draw(st.sampled_from([0, 1, 999_999]))
    return transition + timedelta(seconds=delta, microseconds=micro)


@st.composite
def zone_and_instant(draw: st.DrawFn) -> tuple[str, datetime]:
    zone = draw(zones)
    at = draw(st.one_of(instants, near_transition(zone)))
    return zone, at


calendar_kinds = st.sampled_from(CALENDAR)
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def local(instant: datetime, zone: str) -> datetime:
    return instant.astimezone(ZoneInfo(zone))


def offset(instant: datetime, zone: str) -> timedelta:
    value = local(instant, zone).utcoffset()
    assert value is not None
    return value


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def at_local(
    zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone), fold=fold)


# --- properties common to calendar windows ----------------------------------------------


@PROPERTY
@given(kind=calendar_kinds, pair=zone_and_instant())
def test_window_contains_the_instant_and_is_not_empty(
    kind: IntervalKind, pair: tuple[str, datetime]
) -> None:
    zone, at = pair
    window = window_for(Interval(kind, zone), at)
    assert window.start <= at < window.end
    assert window.contains(at)
    assert window.start < window.end


@PROPERTY
@given(kind=calendar_kinds, pair=zone_and_instant())
def test_windows_tile_time(kind: IntervalKind, pair: tuple[str, datetime]) -> None:
    zone, at = pair
    interval = Interval(kind, zone)
    window = window_for(interval, at)
    assert window_for(interval, window.end).start == window.end
    assert window_for(interval, window.start - US).end == window.start
    # Any instant inside gives back the same window: no boundary hides inside it.
    assert window_for(interval, window.start) == window
    assert window_for(interval, window.end - US) == window
    assert window_for(interval, window.start + (window.end - window.start) / 2) == window


@PROPERTY
@given(kind=calendar_kinds, pair=zone_and_instant(), other=zones)
def test_window_does_not_depend_on_the_tz_of_the_input(
    kind: IntervalKind, pair: tuple[str, datetime], other: str
) -> None:
    zone, at = pair
    interval = Interval(kind, zone)
    expected = window_for(interval, at)
    same_instant = at.astimezone(ZoneInfo(other))
    assert window_for(interval, same_instant) == expected
    assert window_for(interval, same_instant).start.utcoffset() == timedelta(0)


@PROPERTY
@given(pair=zone_and_instant())
def test_hourly_windows_start_and_end_on_a_local_whole_hour(pair: tuple[str, datetime]) -> None:
    zone, at = pair
    window = window_for(Interval(IntervalKind.HOURLY, zone), at)
    for edge in (window.start, window.end):
        wall = local(edge, zone)
        assert (wall.minute, wall.second, wall.microsecond) == (0, 0, 0)
    assert timedelta(0) < window.end - window.start <= timedelta(hours=2)


# Zones whose offset only ever changed by whole hours over these years: every hour is 60 min.
WHOLE_HOUR_SHIFTS = [
    ("UTC", 1900),
    ("Europe/Prague", 1900),
    ("America/New_York", 1900),
    ("America/Santiago", 1950),
    ("Asia/Kolkata", 1950),
    ("Asia/Kathmandu", 1990),
    ("Pacific/Chatham", 1960),
    ("America/St_Johns", 1950),
]


@st.composite
def whole_hour_zone_and_instant(draw: st.DrawFn) -> tuple[str, datetime]:
    zone, since = draw(st.sampled_from(WHOLE_HOUR_SHIFTS))
    at = draw(st.one_of(instants, near_transition(zone)))
    while at.year < since:  # 28 years keep weekdays and leap days (no 1900/2100 in range)
        at = at.replace(year=at.year + 28)
    return zone, at


@PROPERTY
@given(pair=whole_hour_zone_and_instant())
def test_hourly_windows_last_one_hour_where_shifts_are_whole_hours(
    pair: tuple[str, datetime],
) -> None:
    zone, at = pair
    window = window_for(Interval(IntervalKind.HOURLY, zone), at)
    assert window.end - window.start == timedelta(hours=1)


@PROPERTY
@given(kind=st.sampled_from(CALENDAR[1:]), pair=zone_and_instant())
def test_day_based_windows_start_at_the_first_instant_of_a_local_day(
    kind: IntervalKind, pair: tuple[str, datetime]
) -> None:
    zone, at = pair
    window = window_for(Interval(kind, zone), at)
    for edge in (window.start, window.end):
        before, after = local(edge - US, zone), local(edge, zone)
        # The local date moves forward exactly here...
        assert before.date() < after.date()
        # ...at midnight, unless the clock jumped over midnight at this very instant.
        if after.time() != time(0):
            assert offset(edge - US, zone) != offset(edge, zone)
        # The first day of the period (Monday / the 1st) begins here (or was skipped).
        first_days = [
            before.date() + timedelta(days=n)
            for n in range(1, (after.date() - before.date()).days + 1)
        ]
        if kind is IntervalKind.WEEKLY:
            assert any(day.weekday() == 0 for day in first_days)
        elif kind is IntervalKind.MONTHLY:
            assert any(day.day == 1 for day in first_days)
    # The window is one local day / ISO week / month.
    first, last = local(window.start, zone).date(), local(window.end - US, zone).date()
    if kind is IntervalKind.DAILY:
        assert first == last
    elif kind is IntervalKind.WEEKLY:
        assert first.isocalendar()[:2] == last.isocalendar()[:2]
    else:
        assert (first.year, first.month) == (last.year, last.month)


@PROPERTY
@given(kind=st.sampled_from(CALENDAR[1:]), pair=zone_and_instant())
def test_day_based_window_length_is_calendar_days_minus_the_offset_change(
    kind: IntervalKind, pair: tuple[str, datetime]
) -> None:
    zone, at = pair
    window = window_for(Interval(kind, zone), at)
    start, end = local(window.start, zone), local(window.end, zone)
    if start.time() == time(0) and end.time() == time(0):
        days = (end.date() - start.date()).days
        expected = timedelta(days=days) - (offset(window.end, zone) - offset(window.start, zone))
        assert window.end - window.start == expected
        # Days skipped whole by a date-line jump (Kwajalein 1993, Apia 2011) don't count.
        skipped = max(
            0, (offset(window.end, zone) - offset(window.start, zone)) // timedelta(days=1)
        )
        expected_days = {IntervalKind.DAILY: {1}, IntervalKind.WEEKLY: {7}}
        assert days - skipped in expected_days.get(kind, {28, 29, 30, 31})


@PROPERTY
@given(at=st.datetimes(min_value=datetime(1980, 1, 1), max_value=datetime(2100, 1, 1)))
def test_prague_days_last_23_24_or_25_hours_and_23_only_in_spring(at: datetime) -> None:
    at = at.replace(tzinfo=UTC)
    window = window_for(Interval(IntervalKind.DAILY, "Europe/Prague"), at)
    length = window.end - window.start
    month = local(window.start, "Europe/Prague").month
    assert length in {timedelta(hours=23), timedelta(hours=24), timedelta(hours=25)}
    if length == timedelta(hours=23):
        assert month in {3, 4}
    if length == timedelta(hours=25):
        assert month in {9, 10}


# --- rolling ----------------------------------------------------------------------------

durations = st.one_of(
    st.sampled_from(
        [timedelta(days=7), timedelta(hours=24), timedelta(minutes=90), timedelta(seconds=30)]
    ),
    st.integers(min_value=1, max_value=400 * 86_400).map(lambda s: timedelta(seconds=s)),
    st.timedeltas(min_value=US, max_value=timedelta(days=400)),
)


@PROPERTY
@given(duration=durations, at=instants, zone=zones)
def test_rolling_buckets_cover_the_duration_and_no_more_than_needed(
    duration: timedelta, at: datetime, zone: str
) -> None:
    interval = Interval(IntervalKind.ROLLING, duration=duration)
    buckets = counter_buckets(interval, at.astimezone(ZoneInfo(zone)))
    width = bucket_width(duration)
    assert all(bucket.end - bucket.start == width for bucket in buckets)
    assert all(a.end == b.start for a, b in pairwise(buckets))
    assert all((bucket.start - EPOCH) % width == timedelta(0) for bucket in buckets)
    assert buckets[-1].contains(at)
    # Covers [at - duration, at], and reaches back less than one bucket further.
    assert buckets[0].start <= at - duration
    assert at - buckets[0].start < duration + width
    assert buckets[-1].end - buckets[0].start <= duration + 2 * width
    assert len({bucket.key for bucket in buckets}) == len(buckets)
    assert window_for(interval, at) == Window(buckets[0].start, buckets[-1].end)


@PROPERTY
@given(duration=durations, at=instants, later=st.floats(min_value=0, max_value=1))
def test_usage_recorded_is_seen_by_every_request_within_the_duration(
    duration: timedelta, at: datetime, later: float
) -> None:
    interval = Interval(IntervalKind.ROLLING, duration=duration)
    recorded_in = counter_buckets(interval, at)[-1]
    then = at + duration * later
    assert recorded_in.key in {bucket.key for bucket in counter_buckets(interval, then)}


@PROPERTY
@given(duration=durations, at=instants, zone=zones)
def test_rolling_buckets_do_not_depend_on_the_tz_of_the_input(
    duration: timedelta, at: datetime, zone: str
) -> None:
    interval = Interval(IntervalKind.ROLLING, duration=duration)
    assert counter_buckets(interval, at.astimezone(ZoneInfo(zone))) == counter_buckets(interval, at)


@given(duration=durations)
def test_bucket_width_is_whole_minutes_about_a_24th(duration: timedelta) -> None:
    width = bucket_width(duration)
    assert width >= timedelta(minutes=1)
    assert width % timedelta(minutes=1) == timedelta(0)
    if duration >= timedelta(minutes=24):
        assert duration / 24 - timedelta(minutes=1) < width <= duration / 24


def test_rolling_window_across_dst_in_a_local_zone_still_covers_24_hours() -> None:
    # Regression: `at - duration` on a New York datetime was wall-clock arithmetic, so on
    # the spring-forward day a 24 h rolling window only reached back 23 h.
    at = at_local("America/New_York", 2024, 3, 10, 12)
    buckets = counter_buckets(Interval(IntervalKind.ROLLING, duration=timedelta(hours=24)), at)
    assert buckets[0].start <= at - timedelta(hours=24)
    assert len(buckets) == 25


def test_rolling_bucket_before_1970_contains_the_instant() -> None:
    # Regression: int(timestamp) truncated toward zero for negative timestamps.
    at = datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)
    interval = Interval(IntervalKind.ROLLING, duration=timedelta(hours=24))
    assert counter_buckets(interval, at)[-1] == Window(utc("1969-12-31T23:00Z"), EPOCH)


def test_seven_day_rolling_window_uses_seven_hour_buckets() -> None:
    interval = Interval(IntervalKind.ROLLING, duration=timedelta(days=7))
    buckets = counter_buckets(interval, utc("2024-05-05T10:30:00Z"))
    assert bucket_width(timedelta(days=7)) == timedelta(hours=7)
    assert len(buckets) == 25
    assert buckets[-1].key == "2024-05-05T05:00:00Z"  # epoch-aligned 7 h grid


# --- calendar windows by hand ------------------------------------------------------------


def window(kind: str, zone: str, at: datetime) -> tuple[datetime, datetime]:
    result = window_for(Interval(IntervalKind(kind), zone), at)
    return result.start, result.end


def test_utc_windows() -> None:
    at = utc("2024-02-29T13:45:10Z")
    assert window("hourly", "UTC", at) == (utc("2024-02-29T13:00Z"), utc("2024-02-29T14:00Z"))
    assert window("daily", "UTC", at) == (utc("2024-02-29T00:00Z"), utc("2024-03-01T00:00Z"))
    assert window("weekly", "UTC", at) == (utc("2024-02-26T00:00Z"), utc("2024-03-04T00:00Z"))
    assert window("monthly", "UTC", at) == (utc("2024-02-01T00:00Z"), utc("2024-03-01T00:00Z"))
    december = window("monthly", "UTC", utc("2023-12-31T23:59:59Z"))
    assert december == (utc("2023-12-01T00:00Z"), utc("2024-01-01T00:00Z"))


def test_prague_daily_windows_are_23_and_25_hours_on_dst_days() -> None:
    spring = window("daily", "Europe/Prague", utc("2024-03-31T12:00Z"))
    assert spring == (utc("2024-03-31T00:00+01:00"), utc("2024-04-01T00:00+02:00"))
    assert spring[1] - spring[0] == timedelta(hours=23)
    autumn = window("daily", "Europe/Prague", utc("2024-10-27T12:00Z"))
    assert autumn == (utc("2024-10-27T00:00+02:00"), utc("2024-10-28T00:00+01:00"))
    assert autumn[1] - autumn[0] == timedelta(hours=25)


def test_prague_repeated_autumn_hour_is_two_hourly_windows() -> None:
    first = window("hourly", "Europe/Prague", at_local("Europe/Prague", 2024, 10, 27, 2, 30))
    second = window(
        "hourly", "Europe/Prague", at_local("Europe/Prague", 2024, 10, 27, 2, 30, fold=1)
    )
    assert first == (utc("2024-10-27T00:00Z"), utc("2024-10-27T01:00Z"))
    assert second == (utc("2024-10-27T01:00Z"), utc("2024-10-27T02:00Z"))


def test_new_york_spring_forward_hour_runs_from_1_to_3_local() -> None:
    start, end = window("hourly", "America/New_York", utc("2024-03-10T06:30Z"))
    assert (start, end) == (utc("2024-03-10T01:00-05:00"), utc("2024-03-10T03:00-04:00"))
    assert end - start == timedelta(hours=1)


def test_santiago_day_whose_midnight_is_skipped_starts_at_1am() -> None:
    # 2024-09-08 00:00 -04 → 01:00 -03. Regression: the day was computed to start at 23:00
    # the evening before (fold=1 applied inside the gap).
    day = window("daily", "America/Santiago", utc("2024-09-08T15:00Z"))
    assert day == (utc("2024-09-08T01:00-03:00"), utc("2024-09-09T00:00-03:00"))
    assert day[1] - day[0] == timedelta(hours=23)
    previous = window("daily", "America/Santiago", utc("2024-09-07T15:00Z"))
    assert previous == (utc("2024-09-07T00:00-04:00"), day[0])
    assert previous[1] - previous[0] == timedelta(hours=24)
    # The week of 2024-09-02 ends when that Sunday ends, at the gap.
    week = window("weekly", "America/Santiago", utc("2024-09-04T12:00Z"))
    assert week[1] == utc("2024-09-09T00:00-03:00")


def test_santiago_autumn_midnight_fall_back_makes_a_25_hour_saturday() -> None:
    # 2025-04-06 00:00 -03 → 2025-04-05 23:00 -04: Saturday's last hour happens twice.
    saturday = window("daily", "America/Santiago", utc("2025-04-06T03:30Z"))
    assert saturday == (utc("2025-04-05T00:00-03:00"), utc("2025-04-06T00:00-04:00"))
    assert saturday[1] - saturday[0] == timedelta(hours=25)


def test_st_johns_old_rule_repeats_saturday_late_evening_inside_sunday() -> None:
    # 2008-11-02 00:01 NDT → 2008-11-01 23:01 NST. Sunday starts at the first midnight; the
    # repeated 23:01–23:59 "Saturday" belongs to Sunday, so no stretch is counted twice.
    zone = "America/St_Johns"
    saturday = window("daily", zone, utc("2008-11-01T12:00Z"))
    assert saturday[1] == utc("2008-11-02T00:00-02:30")
    repeated = utc("2008-11-02T02:40Z")
    assert local(repeated, zone).date() == date(2008, 11, 1)
    sunday = window("daily", zone, repeated)
    assert sunday == (saturday[1], utc("2008-11-03T00:00-03:30"))
    assert sunday[1] - sunday[0] == timedelta(hours=25)


def test_apia_skipped_day_has_no_window() -> None:
    # Samoa skipped 2011-12-30: Dec 29 ends and Dec 31 starts at the same instant.
    zone = "Pacific/Apia"
    dec29 = window("daily", zone, at_local(zone, 2011, 12, 29, 12))
    dec31 = window("daily", zone, at_local(zone, 2011, 12, 31, 12))
    assert dec29[1] == dec31[0] == utc("2011-12-30T10:00Z")
    assert dec29[1] - dec29[0] == timedelta(hours=24)


def test_lord_howe_half_hour_shifts_make_a_90_minute_hour() -> None:
    zone = "Australia/Lord_Howe"
    # Spring, 2024-10-06: 02:00 LHST → 02:30 LHDT. The clock never shows 02:00.
    spring = window("hourly", zone, utc("2024-10-05T15:45Z"))
    assert spring == (utc("2024-10-06T01:00+10:30"), utc("2024-10-06T03:00+11:00"))
    assert spring[1] - spring[0] == timedelta(minutes=90)
    assert window("hourly", zone, utc("2024-10-05T14:40Z")) == spring
    # Autumn, 2024-04-07: 02:00 LHDT → 01:30 LHST. Regression: used to return a window that
    # did not contain the instant (01:40 LHST mapped to 01:00 LHDT–02:00 LHDT).
    autumn = window("hourly", zone, utc("2024-04-06T15:10Z"))
    assert autumn == (utc("2024-04-07T01:00+11:00"), utc("2024-04-07T02:00+10:30"))
    assert autumn[1] - autumn[0] == timedelta(minutes=90)
    # Days still start at midnight and last 23.5 / 24.5 hours.
    day = window("daily", zone, utc("2024-10-05T15:45Z"))
    assert day[1] - day[0] == timedelta(hours=23, minutes=30)


@pytest.mark.parametrize(
    ("zone", "at", "start"),
    [
        ("Asia/Kolkata", "2024-05-05T10:45Z", "2024-05-05T10:30Z"),
        ("Asia/Kolkata", "2024-05-05T10:15Z", "2024-05-05T09:30Z"),
        ("Asia/Kathmandu", "2024-05-05T10:45Z", "2024-05-05T10:15Z"),
        ("Pacific/Chatham", "2024-05-05T10:00Z", "2024-05-05T09:15Z"),
        ("America/St_Johns", "2024-05-05T10:00Z", "2024-05-05T09:30Z"),
        ("Australia/Eucla", "2024-05-05T10:00Z", "2024-05-05T09:15Z"),
    ],
)
def test_hourly_windows_align_to_local_hours_in_half_and_quarter_hour_zones(
    zone: str, at: str, start: str
) -> None:
    assert window("hourly", zone, utc(at)) == (utc(start), utc(start) + timedelta(hours=1))


def test_chatham_dst_hour_is_60_minutes_across_the_245_jump() -> None:
    # 2024-09-29 02:45 +12:45 → 03:45 +13:45: the 02:00 hour ends when the clock shows 04:00.
    hour = window("hourly", "Pacific/Chatham", utc("2024-09-28T13:50Z"))
    assert hour == (utc("2024-09-29T02:00+12:45"), utc("2024-09-29T04:00+13:45"))
    assert hour[1] - hour[0] == timedelta(hours=1)


def test_weekly_windows_start_on_monday_in_local_time() -> None:
    # Sunday 23:30 in New York is already Monday in UTC.
    start, end = window("weekly", "America/New_York", utc("2024-05-06T03:30Z"))
    assert local(start, "America/New_York").date() == date(2024, 4, 29)
    assert end == utc("2024-05-06T00:00-04:00")


def test_monthly_window_in_a_zone_ahead_of_utc() -> None:
    # 2024-02-29T23:30Z is already March 1st in Prague.
    start, end = window("monthly", "Europe/Prague", utc("2024-02-29T23:30Z"))
    assert (start, end) == (utc("2024-03-01T00:00+01:00"), utc("2024-04-01T00:00+02:00"))


@PROPERTY
@given(
    kind=st.sampled_from(list(IntervalKind)),
    zone=zones,
    at=instants,
    steps=st.lists(st.integers(min_value=-10_000, max_value=10_000), max_size=8),
)
def test_memoised_answers_equal_fresh_ones(
    kind: IntervalKind, zone: str, at: datetime, steps: list[int]
) -> None:
    duration = timedelta(minutes=97) if kind is IntervalKind.ROLLING else None
    interval = Interval(kind, zone, duration)
    for step in steps:
        at += timedelta(seconds=step * 7)
        memoised = counter_buckets(interval, at)
        windows_module._LAST_WINDOW.clear()
        windows_module._LAST_BUCKETS.clear()
        assert counter_buckets(interval, at) == memoised


def test_window_for_a_repeated_call_returns_the_same_window() -> None:
    interval = Interval(IntervalKind.DAILY, "Europe/Prague")
    first = window_for(interval, utc("2024-05-05T10:00Z"))
    assert window_for(interval, utc("2024-05-05T11:00Z")) is first
    assert window_for(interval, utc("2024-05-06T11:00Z")) != first


# --- validation and formatting -----------------------------------------------------------


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        window_for(Interval(IntervalKind.DAILY), datetime(2024, 1, 1))
    rolling = Interval(IntervalKind.ROLLING, duration=timedelta(hours=1))
    with pytest.raises(ValueError, match="aware"):
        counter_buckets(rolling, datetime(2024, 1, 1))


def test_interval_validation() -> None:
    with pytest.raises(ValueError, match="positive duration"):
        Interval(IntervalKind.ROLLING)
    with pytest.raises(ValueError, match="positive duration"):
        Interval(IntervalKind.ROLLING, duration=timedelta(0))
    with pytest.raises(ValueError, match="only a rolling"):
        Interval(IntervalKind.DAILY, duration=timedelta(days=1))
    with pytest.raises(KeyError):  # ZoneInfoNotFoundError
        Interval(IntervalKind.DAILY, "Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="is not a valid IntervalKind"):
        Interval("fortnightly")  # type: ignore[arg-type]


def test_interval_accepts_the_kind_as_a_string() -> None:
    interval = Interval("daily", "Europe/Prague")  # type: ignore[arg-type]
    assert interval.kind is IntervalKind.DAILY
    assert interval == Interval(IntervalKind.DAILY, "Europe/Prague")


def test_interval_str() -> None:
    assert str(Interval(IntervalKind.DAILY)) == "daily"
    assert str(Interval(IntervalKind.MONTHLY, "Europe/Prague")) == "monthly (Europe/Prague)"
    assert str(Interval(IntervalKind.ROLLING, duration=timedelta(days=7))) == "rolling 7d"
    assert str(Interval(IntervalKind.ROLLING, duration=timedelta(minutes=90))) == "rolling 1h30m"


def test_window_key_and_half_open_contains() -> None:
    result = Window(utc("2024-05-05T00:00+02:00"), utc("2024-05-06T00:00+02:00"))
    assert result.key == "2024-05-04T22:00:00Z"
    assert result.contains(result.start)
    assert not result.contains(result.end)


# --- bounds ----------------------------------------------------------------------------------


def test_rolling_durations_are_bounded() -> None:
    assert rolling_duration_problem(MIN_ROLLING) is None
    assert rolling_duration_problem(MAX_ROLLING) is None
    too_short = rolling_duration_problem(timedelta(seconds=59))
    assert too_short is not None
    assert "at least 1 minute" in too_short
    assert rolling_duration_problem(timedelta(days=900_000)) == (
        "a rolling window lasts at most 366 days (got 900000d)"
    )


def test_the_longest_rolling_window_keeps_24_buckets() -> None:
    buckets = counter_buckets(Interval(IntervalKind.ROLLING, duration=MAX_ROLLING), NOW_UTC)
    assert len(buckets) == 25
    assert buckets[0].start <= NOW_UTC - MAX_ROLLING


@pytest.mark.parametrize(
    "at", [datetime(1971, 1, 1, tzinfo=UTC), datetime(8999, 12, 31, tzinfo=UTC)]
)
@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "Etc/GMT+12"])
def test_every_bounded_interval_has_windows_far_from_now(at: datetime, zone: str) -> None:
    # Regression: a rolling window reaching back before year 1 overflowed datetime arithmetic
    # on every request; the bounds keep every interval's windows computable far from now.
    for kind in CALENDAR:
        assert window_for(Interval(kind, zone), at).contains(at)
    for duration in (MIN_ROLLING, MAX_ROLLING):
        assert window_for(Interval(IntervalKind.ROLLING, duration=duration), at).contains(at)
