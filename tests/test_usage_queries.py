"""Usage queries (``store.usage``) over a real journal filled through the real write path.

The rollups and the raw decisions must give the same numbers; local days are summed from
hours (a 23- and a 25-hour day around DST changes); unpriced usage is counted, never $0.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postgres_support import throwaway_postgres
from spendgate.domain.pricing import Usage
from spendgate.domain.routing import RoutingMode
from spendgate.domain.scopes import RequestScopes
from spendgate.domain.timeline import Bucket, TimeRange, bucket_windows, on_utc_hours, zone
from spendgate.domain.windows import Window
from spendgate.store import usage as queries
from spendgate.store.journal import Journal
from spendgate.store.records import UsageTotals
from spendgate.store.usage import ExportCursorError, Source, UsageFilter
from spendgate.store.writer import WriterSettings
from usage_support import governor, record

PRAGUE = zone("Europe/Prague")
SPRING = datetime(2026, 3, 29, tzinfo=PRAGUE)  # 23 hours
AUTUMN = datetime(2026, 10, 25, tzinfo=PRAGUE)  # 25 hours
ALICE = RequestScopes(project="acme", principal="alice", api_key="k-alice", agent="indexer")
BOB = RequestScopes(project="acme", principal="bob", api_key="k-bob", session="s-9")
DAVE = RequestScopes(project="globex", principal="dave", api_key="k-dave", agent="indexer")
CAPPED = RequestScopes(project="capped", principal="erin", api_key="k-erin")
NOBODY = RequestScopes(api_key="k-anon")
ANY = UsageFilter()


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def journal(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Journal]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('usage') / 'journal.db'}"
        with Journal(url, settings=WriterSettings(max_batch_wait_ms=2)) as opened:
            yield opened
        return
    with (
        throwaway_postgres() as url,
        Journal(url, settings=WriterSettings(max_batch_wait_ms=2)) as opened,
    ):
        yield opened


_areas = itertools.count()


def area() -> datetime:
    """A fresh stretch of time per test (the module's journal is shared): whole UTC days, each
    test 60 days after the previous one, starting in 2027."""
    return datetime(2027, 1, 1, tzinfo=UTC) + timedelta(days=60 * next(_areas))


def both(journal: Journal, span: TimeRange, filters: UsageFilter = ANY) -> UsageTotals:
    with journal.engine.connect() as connection:
        from_rollups = queries.summary(connection, span, filters, Source.ROLLUPS)
        from_decisions = queries.summary(connection, span, filters, Source.DECISIONS)
    assert from_rollups == from_decisions
    return from_rollups


def mixed_traffic(journal: Journal, start: datetime, hours: int) -> None:
    """Every kind of request once an hour: degraded, requested model kept, unpriced, blocked,
    settled later, never settled, dry-run would-block."""
    smart, plain = governor(journal), governor(journal, smart_routing=False)
    dry = governor(journal, mode=RoutingMode.DRY_RUN)
    for hour in range(hours):
        at = start + timedelta(hours=hour, minutes=7)
        record(smart, at, ALICE)
        record(plain, at + timedelta(minutes=1), BOB, model="premium", latency_ms=900.25)
        record(plain, at + timedelta(minutes=2), DAVE, model="mystery", settle="later")
        record(smart, at + timedelta(minutes=3), CAPPED)
        record(plain, at + timedelta(minutes=4), NOBODY, settle="never")
        record(dry, at + timedelta(minutes=5), CAPPED)
    assert journal.flush(10)


# --- the two sources agree -------------------------------------------------------------------


def test_summary_counts_every_kind_of_request_and_both_sources_agree(journal: Journal) -> None:
    start = area()
    mixed_traffic(journal, start, hours=3)
    totals = both(journal, TimeRange(start, start + timedelta(hours=3)))
    assert totals.requests == 18
    assert totals.blocked == 3  # CAPPED, enforced
    assert totals.would_blocked == 3  # CAPPED, dry run
    assert totals.settled == 12  # NOBODY never settles; blocked ones neither
    assert totals.unpriced == 3  # mystery: counted, not priced at $0
    assert totals.cost_usd > 0
    assert totals.rerouted >= 3  # ALICE's simple prompt goes to the cheaper mini
    assert totals.input_tokens == 12 * 40
    assert totals.output_tokens == 12 * 25
    for filters in (
        UsageFilter(project="acme"),
        UsageFilter(principal="dave"),
        UsageFilter(model="mystery"),
        UsageFilter(provider="beta"),
        UsageFilter(project="nobody-here"),
    ):
        both(journal, TimeRange(start, start + timedelta(hours=3)), filters)
    assert (
        both(
            journal, TimeRange(start, start + timedelta(hours=3)), UsageFilter(model="mystery")
        ).unpriced
        == 3
    )


def test_decision_only_filters(journal: Journal) -> None:
    start = area()
    mixed_traffic(journal, start, hours=2)
    span = TimeRange(start, start + timedelta(hours=2))
    with journal.engine.connect() as connection:
        agent = queries.summary(connection, span, UsageFilter(agent="indexer"), Source.DECISIONS)
        key = queries.summary(connection, span, UsageFilter(api_key="k-bob"), Source.DECISIONS)
        session = queries.summary(connection, span, UsageFilter(session="s-9"), Source.DECISIONS)
    assert agent.requests == 4  # ALICE and DAVE
    assert key == session
    assert key.requests == 2
    assert key.settled == 2
    # A rollup family has project and agent, none has agent and principal, none api keys.
    assert queries.choose_source(UsageFilter(agent="x"), on_utc_hours=True) is Source.ROLLUPS
    assert (
        queries.choose_source(UsageFilter(agent="x", principal="y"), on_utc_hours=True)
        is Source.DECISIONS
    )
    assert queries.choose_source(UsageFilter(api_key="x"), on_utc_hours=True) is Source.DECISIONS
    assert (
        queries.choose_source(UsageFilter(model="x"), on_utc_hours=True, by="agent")
        is Source.DECISIONS
    )
    assert queries.choose_source(UsageFilter(project="x"), on_utc_hours=True) is Source.ROLLUPS
    assert queries.choose_source(UsageFilter(), on_utc_hours=False) is Source.DECISIONS


def test_top_agrees_between_sources_and_keeps_none_as_none(journal: Journal) -> None:
    start = area()
    mixed_traffic(journal, start, hours=2)
    span = TimeRange(start, start + timedelta(hours=2))
    with journal.engine.connect() as connection:
        for by in ("project", "principal", "model", "provider", "agent"):
            rollups = queries.top(connection, span, UsageFilter(), by, Source.ROLLUPS)
            decisions = queries.top(connection, span, UsageFilter(), by, Source.DECISIONS)
            assert sorted(rollups, key=str) == sorted(decisions, key=str)
        projects = queries.top(connection, span, UsageFilter(), "project", Source.ROLLUPS)
        agents = queries.top(connection, span, UsageFilter(), "agent", Source.ROLLUPS)
    assert {t.group["project"]: t.requests for t in projects} == {
        "acme": 4, "globex": 2, "capped": 4, None: 2,
    }  # fmt: skip
    assert {t.group["agent"]: t.requests for t in agents} == {"indexer": 4, None: 8}


# --- timelines: calendar buckets in a timezone, across DST ------------------------------------


def hourly_traffic(journal: Journal, first: datetime, last: datetime) -> list[datetime]:
    """One settled request at 20 past every UTC hour in ``[first, last)``."""
    gov = governor(journal, smart_routing=False)
    instants = []
    at = first.astimezone(UTC).replace(minute=20)
    while at < last:
        record(gov, at, ALICE, usage=Usage(input_tokens=100, output_tokens=10))
        instants.append(at)
        at += timedelta(hours=1)
    assert journal.flush(10)
    return instants


@pytest.mark.parametrize("day", [SPRING, AUTUMN], ids=["spring-23h", "autumn-25h"])
def test_local_days_across_a_dst_change_sum_their_own_hours(
    journal: Journal, day: datetime
) -> None:
    first, last = day - timedelta(days=1), day + timedelta(days=2)
    instants = hourly_traffic(journal, first, last)
    span = TimeRange(
        day.astimezone(UTC) - timedelta(hours=12), day.astimezone(UTC) + timedelta(hours=36)
    )
    windows = bucket_windows(Bucket.DAY, PRAGUE, span)
    assert on_utc_hours(windows)
    with journal.engine.connect() as connection:
        rollups = queries.timeline(connection, windows, UsageFilter(project="acme"), Source.ROLLUPS)
        decisions = queries.timeline(
            connection, windows, UsageFilter(project="acme"), Source.DECISIONS
        )
        whole = queries.summary(
            connection,
            TimeRange(windows[0].start, windows[-1].end),
            UsageFilter(project="acme"),
            Source.ROLLUPS,
        )
    assert rollups == decisions
    expected_hours = 23 if day is SPRING else 25
    assert [(w.end - w.start) / timedelta(hours=1) for w in windows] == [24, expected_hours, 24]
    # One request per UTC hour: a local day holds as many requests as it has hours.
    assert [t.requests for t in rollups] == [24, expected_hours, 24]
    by_local_date = Counter(at.astimezone(PRAGUE).date() for at in instants)
    assert [t.requests for t in rollups] == [
        by_local_date[w.start.astimezone(PRAGUE).date()] for w in windows
    ]
    # The days add up to the UTC sum of the same stretch (nothing doubled, nothing lost).
    assert sum(t.requests for t in rollups) == whole.requests == 48 + expected_hours
    assert sum((t.cost_usd for t in rollups), Decimal(0)) == whole.cost_usd
    assert sum(t.input_tokens for t in rollups) == whole.input_tokens


def test_half_hour_zone_timeline_comes_from_decisions(journal: Journal) -> None:
    start = area()
    gov = governor(journal, smart_routing=False)
    # 18:10 and 18:40 UTC: either side of Kolkata's midnight (18:30 UTC).
    record(gov, start + timedelta(hours=18, minutes=10), ALICE)
    record(gov, start + timedelta(hours=18, minutes=40), ALICE)
    assert journal.flush(10)
    kolkata = zone("Asia/Kolkata")
    windows = bucket_windows(
        Bucket.DAY, kolkata, TimeRange(start + timedelta(hours=12), start + timedelta(hours=20))
    )
    assert not on_utc_hours(windows)
    with journal.engine.connect() as connection:
        points = queries.timeline(connection, windows, UsageFilter(), Source.DECISIONS)
    assert [t.requests for t in points] == [1, 1]
    assert windows[1].start == start + timedelta(hours=18, minutes=30)


def _compare(journal: Journal, windows: list[Window], filters: UsageFilter) -> None:
    with journal.engine.connect() as connection:
        points = queries.timeline(connection, windows, filters, Source.DECISIONS)
        span = TimeRange(windows[0].start, windows[-1].end)
        total = queries.summary(connection, span, filters, Source.DECISIONS)
        if on_utc_hours(windows):
            assert queries.timeline(connection, windows, filters, Source.ROLLUPS) == points
            assert queries.summary(connection, span, filters, Source.ROLLUPS) == total
    assert sum(p.requests for p in points) == total.requests
    assert sum(p.settled for p in points) == total.settled
    assert sum(p.unpriced for p in points) == total.unpriced
    assert sum(p.input_tokens + p.output_tokens for p in points) == total.total_tokens
    assert sum((p.cost_usd for p in points), Decimal(0)) == total.cost_usd
    assert sum((p.saved_usd for p in points), Decimal(0)) == total.saved_usd


_property_projects = itertools.count()
TIMEZONES = ["UTC", "Europe/Prague", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu",
             "Australia/Lord_Howe", "Pacific/Chatham"]  # fmt: skip


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    offsets=st.lists(st.integers(0, 5 * 24 * 60 - 1), min_size=1, max_size=12),
    models=st.lists(st.sampled_from(["standard", "premium", "mystery"]), min_size=12, max_size=12),
    settles=st.lists(st.sampled_from(["now", "later", "never"]), min_size=12, max_size=12),
    tz=st.sampled_from(TIMEZONES),
    bucket=st.sampled_from(list(Bucket)),
)
def test_timeline_buckets_sum_to_the_summary_in_any_timezone(
    journal: Journal,
    offsets: list[int],
    models: list[str],
    settles: list[str],
    tz: str,
    bucket: Bucket,
) -> None:
    # A fresh project per example keeps examples apart in the shared journal; the five days
    # straddle Prague's and Lord Howe's spring change (2026-03-29 / 2026-04-05 autumn there).
    project = f"prop-{next(_property_projects)}"
    base = datetime(2026, 3, 27, 0, 0, tzinfo=UTC)
    gov = governor(journal, smart_routing=False)
    scopes = RequestScopes(project=project, principal="p", api_key="k")
    for index, offset in enumerate(offsets):
        record(
            gov,
            base + timedelta(minutes=offset),
            scopes,
            model=models[index],
            settle=settles[index],
        )
    assert journal.flush(10)
    windows = bucket_windows(bucket, zone(tz), TimeRange(base, base + timedelta(days=5)))
    _compare(journal, windows, UsageFilter(project=project))
    with journal.engine.connect() as connection:
        total = queries.summary(
            connection,
            TimeRange(windows[0].start, windows[-1].end),
            UsageFilter(project=project),
            Source.DECISIONS,
        )
    assert total.requests == len(offsets)
    # Split by model, both sources add up to the same timeline, bucket by bucket.
    with journal.engine.connect() as connection:
        for source in (Source.DECISIONS, *([Source.ROLLUPS] if on_utc_hours(windows) else [])):
            whole = queries.timeline(connection, windows, UsageFilter(project=project), source)
            split = queries.timeline_by_model(
                connection, windows, UsageFilter(project=project), source
            )
            for index, bucket_total in enumerate(whole):
                parts = [line[index] for line in split.values()]
                assert sum(p.requests for p in parts) == bucket_total.requests
                assert sum(p.total_tokens for p in parts) == bucket_total.total_tokens
                assert sum((p.cost_usd for p in parts), Decimal(0)) == bucket_total.cost_usd


# --- rollup families: daily tables, edge hours, coarser dimensions --------------------------

_SCOPES = [
    RequestScopes(project=project, principal=person, api_key="k", agent=agent)
    for project, person, agent in [
        ("acme", "alice", "indexer"), ("acme", "bob", None), ("globex", "dave", "indexer"),
        (None, "solo", "crawler"),
    ]
]  # fmt: skip


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    requests=st.lists(
        st.tuples(
            st.integers(0, 4 * 24 * 60 - 1),  # minute of four days
            st.sampled_from(_SCOPES),
            st.sampled_from(["standard", "premium", "mystery"]),
            st.sampled_from(["now", "later", "never"]),
            # Whole milliseconds: sums of them are exact whatever the order of addition.
            st.integers(1, 90_000).map(float),
        ),
        min_size=1,
        max_size=15,
    ),
    first_hour=st.integers(0, 30),
    hours=st.integers(1, 96),
    filters=st.sampled_from(
        [
            ANY,
            UsageFilter(project="acme"),
            UsageFilter(model="premium"),
            UsageFilter(agent="indexer"),
            UsageFilter(project="acme", agent="indexer"),
            UsageFilter(principal="dave", model="standard"),
        ]
    ),
)
def test_every_rollup_family_agrees_with_the_decisions(
    journal: Journal,
    requests: list[tuple[int, RequestScopes, str, str, float]],
    first_hour: int,
    hours: int,
    filters: UsageFilter,
) -> None:
    """Whichever table answers (hourly, daily with edge hours, per model, per agent), the
    sums, the rankings and the UTC days equal the raw decisions' (latency histogram too)."""
    start = area()
    plain = governor(journal, smart_routing=False)
    for minute, scopes, model, settle, latency in requests:
        at = start + timedelta(minutes=minute)
        record(plain, at, scopes, model=model, settle=settle, latency_ms=latency)
    assert journal.flush(10)
    span = TimeRange(
        start + timedelta(hours=first_hour), start + timedelta(hours=first_hour + hours)
    )
    total = both(journal, span, filters)
    assert total.timed == total.settled  # every one was timed
    days = bucket_windows(Bucket.DAY, zone("UTC"), span)
    _compare(journal, days, filters)
    with journal.engine.connect() as connection:
        for by in ("project", "principal", "model", "provider", "agent"):
            source = queries.choose_source(filters, on_utc_hours=True, by=by)
            answered = queries.top(connection, span, filters, by, source)
            exact = queries.top(connection, span, filters, by, Source.DECISIONS)
            assert sorted(answered, key=str) == sorted(exact, key=str), by


# --- export ---------------------------------------------------------------------------------


def test_export_pages_by_cursor_oldest_first(journal: Journal) -> None:
    start = area()
    mixed_traffic(journal, start, hours=2)
    span = TimeRange(start, start + timedelta(hours=2))
    everything = list(queries.export_rows(journal.engine, span, UsageFilter(), limit=1000))
    assert len(everything) == 12
    assert [r["created_at"] for r in everything] == sorted(r["created_at"] for r in everything)
    pages, after = [], None
    while True:
        with journal.engine.connect() as connection:
            remaining = queries.count_export(connection, span, UsageFilter(), after)
        page = list(queries.export_rows(journal.engine, span, UsageFilter(), limit=5, after=after))
        assert remaining == 12 - sum(len(p) for p in pages)
        pages.append(page)
        if len(page) < 5:
            break
        after = page[-1]["id"]
    assert [r["id"] for p in pages for r in p] == [r["id"] for r in everything]
    unpriced = [r for r in everything if r["unpriced"]]
    assert unpriced
    assert all(r["cost_usd"] is None and r["settled_at"] is not None for r in unpriced)
    blocked = [r for r in everything if r["routing_action"] == "block"]
    assert blocked
    assert all(r["status"] == "refused" for r in blocked)


def test_export_cursor_outside_the_selection_is_refused(journal: Journal) -> None:
    start = area()
    mixed_traffic(journal, start, hours=1)
    span = TimeRange(start, start + timedelta(hours=1))
    globex = list(queries.export_rows(journal.engine, span, UsageFilter(project="globex"), 10))
    with journal.engine.connect() as connection, pytest.raises(ExportCursorError):
        queries.count_export(connection, span, UsageFilter(project="acme"), globex[0]["id"])
    with journal.engine.connect() as connection, pytest.raises(ExportCursorError):
        queries.count_export(connection, span, UsageFilter(), "no-such-decision")
