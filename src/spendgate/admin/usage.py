"""Usage admin API (``/api/v1/usage``): summary, timeline, top and export.

Every endpoint takes the same range and filters. The range is ``since``/``until`` (ISO 8601; a
value without an offset is read in ``tz`` for the timeline, else UTC) and/or ``window`` (``24h``,
``7d``, ``2w``); by default the last 24 whole UTC hours up to the end of the current one.
Non-admin keys are confined to their own project / principal / key (``Viewer.confine``): the
filter is forced, and naming someone else is a 403.

Each answer says which table served it (``source``): the hourly rollups when the filters and
the range allow, else the raw decisions (see ``store.usage``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from math import isinf
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from spendgate.admin.auth import Viewer
from spendgate.admin.context import AdminContext
from spendgate.admin.deps import get_context, get_viewer
from spendgate.admin.errors import AdminError
from spendgate.domain.timeline import (
    Bucket,
    TimelineError,
    TimeRange,
    bucket_windows,
    on_utc_hours,
    parse_instant,
    parse_span,
    resolve_range,
    zone,
)
from spendgate.domain.windows import Window
from spendgate.store import usage as queries
from spendgate.store.money import to_text
from spendgate.store.records import UsageTotals
from spendgate.store.usage import ExportCursorError, Source, UsageFilter, choose_source

__all__ = ["neutralise_cell", "router"]

router = APIRouter(prefix="/usage", tags=["usage"])

_UTC = ZoneInfo("UTC")
EXPORT_MAX_ROWS: Final = 100_000
# Scope ids are plain text; NUL would be refused by PostgreSQL, so refuse it here with a 422.
_ID = Query(max_length=200, pattern=r"^[^\x00]+$")
_TIME = Query(max_length=64, description="ISO 8601 date or date-time")


# --- response models -----------------------------------------------------------------------


class TimeWindow(BaseModel):
    start: datetime
    end: datetime


class UsageFilters(BaseModel):
    project: str | None
    principal: str | None
    api_key: str | None
    agent: str | None
    session: str | None
    model: str | None
    provider: str | None


class Totals(BaseModel):
    """Counts and sums over a range. Amounts are exact decimal strings (USD). A settled request
    without a price counts in ``unpriced_requests`` and adds nothing to ``cost_usd``."""

    requests: int
    settled: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    total_tokens: int
    cost_usd: str
    unpriced_requests: int
    avg_latency_ms: float | None
    blocked: int
    would_blocked: int
    rerouted: int
    # Rerouted requests on their actual usage: what the requested model would have cost
    # more (saved) or less (extra: escalations and failovers to dearer models). Never netted.
    saved_by_routing_usd: str
    extra_from_routing_usd: str


class UsageSummary(Totals):
    window: TimeWindow
    filters: UsageFilters
    source: Source
    p95_latency_ms_at_most: float | None = Field(
        description="An upper bound: 95% of the timed requests took at most this long (the "
        "edge of the latency bucket holding the 95th percentile). Null when none was timed, "
        "or when the 95th percentile is slower than the last edge (60,000 ms)."
    )
    timed_requests: int = Field(
        description="Settled requests the latency histogram counts (those rolled up before "
        "it existed are not)."
    )


class TimelinePoint(Totals):
    start: datetime
    end: datetime


class UsageTimeline(BaseModel):
    window: TimeWindow
    filters: UsageFilters
    source: Source
    bucket: Bucket
    tz: str
    data: list[TimelinePoint]


class TopEntry(Totals):
    key: str | None  # the member's id; null for requests without one (e.g. no project)


class UsageTop(BaseModel):
    window: TimeWindow
    filters: UsageFilters
    source: Source
    by: str
    metric: str
    total_groups: int
    data: list[TopEntry]


class ExportRow(BaseModel):
    id: str
    created_at: datetime
    project: str | None
    principal: str | None
    api_key: str | None
    agent: str | None
    session: str | None
    task_class: str
    mode: str
    requested_model: str
    actual_model: str
    provider: str
    routing_action: str
    would_action: str | None
    status: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int | None
    cost_usd: str | None
    unpriced: bool
    estimated_upper_usd: str | None
    latency_ms: float | None
    usage_estimated: bool | None
    settled_at: datetime | None


class UsageExport(BaseModel):
    window: TimeWindow
    filters: UsageFilters
    total: int
    limit: int
    data: list[ExportRow]
    truncated: bool
    next_after: str | None


# --- common parameters -------------------------------------------------------------------


@dataclass(frozen=True)
class UsageQuery:
    since: str | None
    until: str | None
    window: str | None
    filters: UsageFilter

    def time_range(self, now: datetime, tz: ZoneInfo = _UTC) -> TimeRange:
        since = None if self.since is None else parse_instant(self.since, "since", tz)
        until = None if self.until is None else parse_instant(self.until, "until", tz)
        span = None if self.window is None else parse_span(self.window)
        return resolve_range(since, until, span, now)


def usage_query(
    viewer: Annotated[Viewer, Depends(get_viewer)],
    since: Annotated[str | None, _TIME] = None,
    until: Annotated[str | None, _TIME] = None,
    window: Annotated[
        str | None, Query(max_length=16, description="Range length back from until: 24h, 7d, 2w")
    ] = None,
    project: Annotated[str | None, _ID] = None,
    principal: Annotated[str | None, _ID] = None,
    api_key: Annotated[str | None, _ID] = None,
    agent: Annotated[str | None, _ID] = None,
    session: Annotated[str | None, _ID] = None,
    model: Annotated[str | None, _ID] = None,
    provider: Annotated[str | None, _ID] = None,
) -> UsageQuery:
    confined = viewer.confine(
        {
            "project": project,
            "principal": principal,
            "api_key": api_key,
            "agent": agent,
            "session": session,
            "model": model,
            "provider": provider,
        }
    )
    return UsageQuery(since, until, window, UsageFilter(**confined))


Params = Annotated[UsageQuery, Depends(usage_query)]
Context = Annotated[AdminContext, Depends(get_context)]


def _invalid(error: TimelineError) -> AdminError:
    return AdminError(422, "invalid_request", error.message, param=f"query.{error.param}")


def _now() -> datetime:
    return datetime.now(UTC)


def _totals(totals: UsageTotals) -> dict[str, Any]:
    latency = totals.avg_latency_ms
    return {
        "requests": totals.requests,
        "settled": totals.settled,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "cached_input_tokens": totals.cached_input_tokens,
        "total_tokens": totals.total_tokens,
        "cost_usd": to_text(totals.cost_usd),
        "unpriced_requests": totals.unpriced,
        # Rounded so that both sources agree (they add the same floats in different orders).
        "avg_latency_ms": None if latency is None else round(latency, 3),
        "blocked": totals.blocked,
        "would_blocked": totals.would_blocked,
        "rerouted": totals.rerouted,
        "saved_by_routing_usd": to_text(totals.saved_usd),
        "extra_from_routing_usd": to_text(totals.extra_usd),
    }


def _window(span: TimeRange, tz: ZoneInfo = _UTC) -> TimeWindow:
    return TimeWindow(start=span.start.astimezone(tz), end=span.end.astimezone(tz))


def _filters(filters: UsageFilter) -> UsageFilters:
    return UsageFilters(**filters.as_dict())


# --- endpoints -------------------------------------------------------------------------------


@router.get("/summary", summary="Usage totals over a range")
def usage_summary(ctx: Context, params: Params) -> UsageSummary:
    """Tokens, cost, requests, latency, blocked / rerouted counts and routing savings."""
    try:
        span = params.time_range(_now())
    except TimelineError as error:
        raise _invalid(error) from error
    aligned = on_utc_hours([Window(span.start, span.end)])
    source = choose_source(params.filters, on_utc_hours=aligned)
    with ctx.journal.engine.connect() as connection:
        totals = queries.summary(connection, span, params.filters, source)
    p95 = totals.p95_latency_ms_at_most()
    return UsageSummary(
        window=_window(span),
        filters=_filters(params.filters),
        source=source,
        p95_latency_ms_at_most=None if p95 is None or isinf(p95) else p95,
        timed_requests=totals.timed,
        **_totals(totals),
    )


@router.get("/timeline", summary="Usage in calendar hours or days of a timezone")
def usage_timeline(
    ctx: Context,
    params: Params,
    bucket: Annotated[Bucket, Query()] = Bucket.HOUR,
    tz: Annotated[str, Query(max_length=64, description="IANA timezone, e.g. Europe/Prague")] = (
        "UTC"
    ),
) -> UsageTimeline:
    """Contiguous buckets (empty ones included) aligned to local hours or days of ``tz``; the
    range is widened to whole buckets. A local day across a DST change lasts 23 or 25 hours,
    and is summed from hours, never a UTC day relabelled. In zones whose offset is not a whole
    hour (Asia/Kolkata) the buckets do not fall on UTC hours, so the raw decisions are used."""
    local, windows, source = _buckets(params, bucket, tz)
    with ctx.journal.engine.connect() as connection:
        points = queries.timeline(connection, windows, params.filters, source)
    return UsageTimeline(
        window=_window(TimeRange(windows[0].start, windows[-1].end), local),
        filters=_filters(params.filters),
        source=source,
        bucket=bucket,
        tz=local.key,
        data=[
            TimelinePoint(
                start=window.start.astimezone(local),
                end=window.end.astimezone(local),
                **_totals(totals),
            )
            for window, totals in zip(windows, points, strict=True)
        ],
    )


def _buckets(params: UsageQuery, bucket: Bucket, tz: str) -> tuple[ZoneInfo, list[Window], Source]:
    """The timeline's calendar buckets in ``tz`` and the source that can answer them."""
    try:
        local = zone(tz)
        span = params.time_range(_now(), local)
        windows = bucket_windows(bucket, local, span)
    except TimelineError as error:
        raise _invalid(error) from error
    return local, windows, choose_source(params.filters, on_utc_hours=on_utc_hours(windows))


@dataclass(frozen=True, slots=True)
class ModelTimeline:
    """Calendar buckets (their starts, in the timeline's zone) and, per model that served
    requests in them (``''``: refused ones), one totals per bucket."""

    starts: list[datetime]
    lines: dict[str, list[UsageTotals]]


def usage_timeline_by_model(
    ctx: AdminContext, params: UsageQuery, bucket: Bucket, tz: str
) -> ModelTimeline:
    """``usage_timeline``'s buckets split by the model that served each request (the
    console's stacked charts; one query whatever the number of models). Plain totals, not
    response models: a 90-day hourly chart has thousands of points."""
    local, windows, source = _buckets(params, bucket, tz)
    with ctx.journal.engine.connect() as connection:
        lines = queries.timeline_by_model(connection, windows, params.filters, source)
    return ModelTimeline([window.start.astimezone(local) for window in windows], lines)


TopBy = Literal["model", "project", "principal", "provider", "agent", "session", "api_key"]
TopMetric = Literal["cost", "tokens", "requests"]


def _rank(metric: TopMetric) -> Any:
    def key(totals: UsageTotals) -> tuple[Any, ...]:
        if metric == "cost":
            # Unpriced requests cannot be ranked by dollars; among equal costs they come first,
            # since they are the spend nobody can see.
            primary: tuple[Any, ...] = (-totals.cost_usd, -totals.unpriced)
        elif metric == "tokens":
            primary = (-totals.total_tokens,)
        else:
            primary = (-totals.requests,)
        (member,) = totals.group.values()
        return (*primary, member is None, member or "")

    return key


@router.get("/top", summary="The largest consumers by model, project, principal, …")
def usage_top(
    ctx: Context,
    params: Params,
    by: Annotated[TopBy, Query()] = "model",
    metric: Annotated[TopMetric, Query()] = "cost",
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> UsageTop:
    """Members of ``by`` ordered by ``metric`` (cost: USD, unpriced requests next; tokens:
    input + output; requests), at most ``limit``; ``total_groups`` counts them all."""
    try:
        span = params.time_range(_now())
    except TimelineError as error:
        raise _invalid(error) from error
    aligned = on_utc_hours([Window(span.start, span.end)])
    source = choose_source(params.filters, on_utc_hours=aligned, by=by)
    with ctx.journal.engine.connect() as connection:
        groups = queries.top(connection, span, params.filters, by, source)
    ranked = sorted(groups, key=_rank(metric))
    return UsageTop(
        window=_window(span),
        filters=_filters(params.filters),
        source=source,
        by=by,
        metric=metric,
        total_groups=len(groups),
        data=[TopEntry(key=t.group[by], **_totals(t)) for t in ranked[:limit]],
    )


# --- export ---------------------------------------------------------------------------------

_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
_CSV_CHUNK_ROWS: Final = 500


def neutralise_cell(text: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula (OWASP: prefix an apostrophe)."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return to_text(value)
    return neutralise_cell(str(value))


def _json_value(value: Any) -> Any:
    return to_text(value) if isinstance(value, Decimal) else value


def _csv_stream(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(queries.EXPORT_COLUMNS)
    for count, row in enumerate(rows, 1):
        writer.writerow(_cell(row[name]) for name in queries.EXPORT_COLUMNS)
        if count % _CSV_CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _json_stream(
    rows: Iterator[dict[str, Any]], head: dict[str, Any], total: int, limit: int
) -> Iterator[bytes]:
    # The object is written key by key so rows stream; ``truncated`` / ``next_after`` come last,
    # once the last row is known.
    yield orjson.dumps(head)[:-1] + b',"data":['
    last: str | None = None
    emitted = 0
    for row in rows:
        yield (b"," if emitted else b"") + orjson.dumps({k: _json_value(v) for k, v in row.items()})
        emitted += 1
        last = row["id"]
    truncated = emitted == limit and total > limit
    tail = {"truncated": truncated, "next_after": last if truncated else None}
    yield b"]," + orjson.dumps(tail)[1:]


_EXPORT_CONTENT: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "The decisions, oldest first (CSV: one header line, then one line each)",
        # ``model`` registers UsageExport among the components and documents it as the JSON
        # form; the CSV form is plain text.
        "model": UsageExport,
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


@router.get(
    "/export",
    summary="Every routing decision in the range, as CSV or JSON",
    response_class=StreamingResponse,
    responses=_EXPORT_CONTENT,
)
def usage_export(
    ctx: Context,
    params: Params,
    format: Annotated[Literal["csv", "json"], Query()] = "csv",
    limit: Annotated[int, Query(ge=1, le=EXPORT_MAX_ROWS)] = EXPORT_MAX_ROWS,
    after: Annotated[str | None, _ID] = None,
) -> StreamingResponse:
    """One row per routing decision (ids, scopes, models, action, tokens, cost, latency,
    status), oldest first, streamed. At most ``limit`` rows per answer (≤ 100000): pass the
    last row's ``id`` as ``after`` for the next page (JSON gives it as ``next_after``).
    ``x-spendgate-total-rows`` tells how many rows the range holds from the cursor on.
    CSV cells that a spreadsheet would run as a formula get a leading apostrophe."""
    try:
        span = params.time_range(_now())
    except TimelineError as error:
        raise _invalid(error) from error
    engine = ctx.journal.engine
    with engine.connect() as connection:
        try:
            total = queries.count_export(connection, span, params.filters, after)
        except ExportCursorError as error:
            raise AdminError(
                422,
                "invalid_request",
                f"after {after!r} is not a decision of this export",
                param="query.after",
            ) from error
    rows = queries.export_rows(engine, span, params.filters, limit, after)
    start, end = (t.strftime("%Y%m%dT%H%M%SZ") for t in (span.start, span.end))
    stem = f"spendgate-usage-{start}-{end}"
    headers = {
        "content-disposition": f'attachment; filename="{stem}.{format}"',
        "x-spendgate-total-rows": str(total),
        "x-spendgate-source": Source.DECISIONS.value,
    }
    if format == "csv":
        return StreamingResponse(
            _csv_stream(rows), media_type="text/csv; charset=utf-8", headers=headers
        )
    head = {
        "window": {"start": span.start, "end": span.end},
        "filters": params.filters.as_dict(),
        "total": total,
        "limit": limit,
    }
    return StreamingResponse(
        _json_stream(rows, head, total, limit), media_type="application/json", headers=headers
    )
