"""Pure rules of usage ranges and timeline buckets (``domain.timeline``)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from spendgate.domain.timeline import (
    MAX_BUCKETS,
    Bucket,
    TimelineError,
    TimeRange,
    bucket_index,
    bucket_windows,
    ceil_utc_hour,
    on_utc_hours,
    parse_instant,
    parse_span,
    resolve_range,
    zone,
)
from spendgate.domain.windows import Window

PRAGUE = zone("Europe/Prague")
NEW_YORK = zone("America/New_York")
KOLKATA = zone("Asia/Kolkata")
UTC_ZONE = zone("UTC")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def lengths(windows: list[Window]) -> list[float]:
    return [(w.end - w.start) / timedelta(hours=1) for w in windows]


@pytest.mark.parametrize(
    ("tz", "change_day"),
    [
        ("Europe/Prague", 29),  # 2026-03-29: CET → CEST, 02:00 → 03:00
        ("America/New_York", 8),  # 2026-03-08: EST → EDT
    ],
)
def test_spring_local_day_lasts_23_hours(tz: str, change_day: int) -> None:
    local = zone(tz)
    day = datetime(2026, 3, change_day, 12, tzinfo=local)
    span = TimeRange(day - timedelta(days=1), day + timedelta(days=1))
    windows = bucket_windows(Bucket.DAY, local, span)
    assert lengths(windows) == [24, 23, 24]
    for window in windows:
        midnight = window.start.astimezone(local)
        assert (midnight.hour, midnight.minute) == (0, 0)
    assert on_utc_hours(windows)


def test_autumn_local_day_lasts_25_hours_in_prague_and_new_york() -> None:
    for local, day in ((PRAGUE, 25), (NEW_YORK, 1)):
        month = 10 if local is PRAGUE else 11
        noon = datetime(2026, month, day, 12, tzinfo=local)
        windows = bucket_windows(Bucket.DAY, local, TimeRange(noon, noon + timedelta(hours=1)))
        assert lengths(windows) == [25]
        assert windows[0].start == datetime(2026, month, day, tzinfo=local)


def test_hour_buckets_across_the_autumn_change_repeat_the_local_hour() -> None:
    # 2026-10-25 in Prague: 02:00–03:00 happens twice (CEST, then CET): two separate buckets.
    span = TimeRange(utc(2026, 10, 24, 23), utc(2026, 10, 25, 3))
    windows = bucket_windows(Bucket.HOUR, PRAGUE, span)
    local_hours = [w.start.astimezone(PRAGUE).hour for w in windows]
    assert local_hours == [1, 2, 2, 3]
    assert lengths(windows) == [1, 1, 1, 1]


def test_buckets_are_contiguous_and_cover_the_range_widened_to_whole_buckets() -> None:
    span = TimeRange(utc(2026, 3, 27, 10, 17), utc(2026, 3, 31, 5, 3))
    windows = bucket_windows(Bucket.DAY, PRAGUE, span)
    assert windows[0].start <= span.start < windows[0].end
    assert windows[-1].start < span.end <= windows[-1].end
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))
    assert sum(lengths(windows)) == 5 * 24 - 1  # five local days, one of them 23 h


def test_half_hour_zones_do_not_fall_on_utc_hours() -> None:
    span = TimeRange(utc(2026, 1, 1), utc(2026, 1, 2))
    days = bucket_windows(Bucket.DAY, KOLKATA, span)
    assert days[0].start == utc(2025, 12, 31, 18, 30)
    assert not on_utc_hours(days)
    hours = bucket_windows(Bucket.HOUR, KOLKATA, span)
    assert hours[0].start == utc(2025, 12, 31, 23, 30)
    assert not on_utc_hours(hours)
    assert on_utc_hours(bucket_windows(Bucket.DAY, UTC_ZONE, span))


def test_bucket_index_places_instants_half_open() -> None:
    windows = bucket_windows(Bucket.HOUR, UTC_ZONE, TimeRange(utc(2026, 1, 1), utc(2026, 1, 1, 3)))
    starts, end = [w.start for w in windows], windows[-1].end
    assert bucket_index(starts, end, utc(2026, 1, 1)) == 0
    assert bucket_index(starts, end, utc(2026, 1, 1, 0, 59, 59)) == 0
    assert bucket_index(starts, end, utc(2026, 1, 1, 1)) == 1
    assert bucket_index(starts, end, utc(2026, 1, 1, 3)) is None
    assert bucket_index(starts, end, utc(2025, 12, 31, 23, 59)) is None
    assert bucket_index([], end, utc(2026, 1, 1)) is None


def test_too_many_buckets_is_refused() -> None:
    span = TimeRange(utc(2020, 1, 1), utc(2020, 1, 1) + timedelta(hours=MAX_BUCKETS + 1))
    with pytest.raises(TimelineError) as caught:
        bucket_windows(Bucket.HOUR, UTC_ZONE, span)
    assert caught.value.param == "bucket"


def test_parse_span() -> None:
    assert parse_span("24h") == timedelta(hours=24)
    assert parse_span("7d") == timedelta(days=7)
    assert parse_span("2w") == timedelta(weeks=2)
    for bad in ("", "0h", "7", "d7", "1y", "-3d", "99999d", "1.5h"):
        with pytest.raises(TimelineError) as caught:
            parse_span(bad)
        assert caught.value.param == "window"


def test_parse_instant_reads_naive_times_in_the_given_zone() -> None:
    assert parse_instant("2026-03-29", "since", PRAGUE) == utc(2026, 3, 28, 23)
    assert parse_instant("2026-03-29T12:00:00Z", "since", PRAGUE) == utc(2026, 3, 29, 12)
    assert parse_instant("2026-03-29T12:00:00+02:00", "until", UTC_ZONE) == utc(2026, 3, 29, 10)
    for bad in ("yesterday", "2026-13-01", "0001-01-01T00:00:00+14:00", "1969-12-31"):
        with pytest.raises(TimelineError) as caught:
            parse_instant(bad, "until", UTC_ZONE)
        assert caught.value.param == "until"


def test_unknown_timezone_names_param_tz() -> None:
    for bad in ("Mars/Olympus", "", "../../etc/passwd", "Europe", "a\x00b"):
        with pytest.raises(TimelineError) as caught:
            zone(bad)
        assert caught.value.param == "tz"


def test_resolve_range_defaults_to_the_last_24_whole_utc_hours() -> None:
    now = utc(2026, 5, 1, 10, 25)
    assert resolve_range(None, None, None, now) == TimeRange(
        utc(2026, 4, 30, 11), utc(2026, 5, 1, 11)
    )
    week = resolve_range(None, None, timedelta(days=7), now)
    assert week.end - week.start == timedelta(days=7)
    assert resolve_range(utc(2026, 4, 1), None, timedelta(days=1), now) == TimeRange(
        utc(2026, 4, 1), utc(2026, 4, 2)
    )
    assert resolve_range(None, utc(2026, 4, 2), timedelta(hours=1), now).start == utc(
        2026, 4, 1, 23
    )
    assert ceil_utc_hour(utc(2026, 1, 1, 5)) == utc(2026, 1, 1, 5)


@pytest.mark.parametrize(
    ("since", "until", "span", "param"),
    [
        (utc(2026, 1, 2), utc(2026, 1, 1), None, "since"),
        (utc(2026, 1, 1), utc(2026, 1, 1), None, "since"),
        (utc(2026, 1, 1), utc(2026, 1, 2), timedelta(hours=1), "window"),
        (utc(2000, 1, 1), utc(2026, 1, 1), None, "since"),
    ],
)
def test_resolve_range_refuses(
    since: datetime, until: datetime, span: timedelta | None, param: str
) -> None:
    with pytest.raises(TimelineError) as caught:
        resolve_range(since, until, span, utc(2026, 5, 1))
    assert caught.value.param == param
