"""``spendgate usage summary|timeline|top|export``: the admin API's usage endpoints.

Every command takes the same range and filters as the API (``--since``/``--until`` ISO 8601,
``--window 7d``, ``--project`` …); tables by default, the API's JSON with ``--json``.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from spendgate.cli.output import (
    Column,
    JsonOption,
    cli_errors,
    console,
    count,
    print_json,
    print_table,
    short_time,
    time_note,
    usd,
    usd_places,
)

__all__ = ["usage_app"]

usage_app = typer.Typer(
    help="Usage: totals, a timeline in calendar hours/days, top consumers, export.",
    no_args_is_help=True,
)

Since = Annotated[
    str | None, typer.Option("--since", help="Start, ISO 8601 (e.g. 2026-03-01 or …T08:00Z).")
]
Until = Annotated[str | None, typer.Option("--until", help="End (exclusive), ISO 8601.")]
Window = Annotated[
    str | None, typer.Option("--window", help="Range length: 24h, 7d, 2w (default 24h).")
]
Project = Annotated[str | None, typer.Option("--project", help="Only this project.")]
Principal = Annotated[str | None, typer.Option("--principal", help="Only this principal.")]
ApiKey = Annotated[str | None, typer.Option("--api-key", help="Only this API key (its id).")]
Agent = Annotated[str | None, typer.Option("--agent", help="Only this agent.")]
Session = Annotated[str | None, typer.Option("--session", help="Only this session.")]
Model = Annotated[str | None, typer.Option("--model", help="Only this (actual) model.")]
Provider = Annotated[str | None, typer.Option("--provider", help="Only this provider.")]

_BAR_WIDTH = 24
_EXPORT_PAGE = 5_000


class Bucket(StrEnum):
    HOUR = "hour"
    DAY = "day"


class Metric(StrEnum):
    COST = "cost"
    TOKENS = "tokens"
    REQUESTS = "requests"


class By(StrEnum):
    MODEL = "model"
    PROJECT = "project"
    PRINCIPAL = "principal"
    PROVIDER = "provider"
    AGENT = "agent"
    SESSION = "session"
    API_KEY = "api_key"


class Format(StrEnum):
    CSV = "csv"
    JSON = "json"


def _params(**values: str | None) -> dict[str, str]:
    return {name: value for name, value in values.items() if value is not None}


def _costs(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each row's cost, with the same decimals down the column."""
    places = usd_places(row["cost_usd"] for row in rows)
    return [usd(row["cost_usd"], places) for row in rows]


def _heading(what: str, body: Mapping[str, Any]) -> None:
    """One line above the table (a table title would wrap at the table's width)."""
    console.print(_title(what, body), markup=False, highlight=False, soft_wrap=True)


def _title(what: str, body: Mapping[str, Any]) -> str:
    window = body["window"]
    filters = ", ".join(f"{k}={v}" for k, v in body.get("filters", {}).items() if v is not None)
    scope = f" · {filters}" if filters else ""
    return (
        f"{what} {short_time(window['start'])} → {short_time(window['end'])}{scope} "
        f"(from {body.get('source', 'decisions')}; {time_note()})"
    )


@usage_app.command("summary")
def summary_command(
    ctx: typer.Context,
    since: Since = None,
    until: Until = None,
    window: Window = None,
    project: Project = None,
    principal: Principal = None,
    api_key: ApiKey = None,
    agent: Agent = None,
    session: Session = None,
    model: Model = None,
    provider: Provider = None,
    as_json: JsonOption = False,
) -> None:
    """Totals: requests, tokens, cost, latency, blocked, rerouted, and what routing saved
    (or added, by escalating) on the tokens actually used."""
    from spendgate.cli.client import client_from

    params = _params(
        since=since, until=until, window=window, project=project, principal=principal,
        api_key=api_key, agent=agent, session=session, model=model, provider=provider,
    )  # fmt: skip
    with cli_errors():
        body = client_from(ctx).get("/usage/summary", params)
    if as_json:
        print_json(body)
        return
    latency = body["avg_latency_ms"]
    money = ("cost_usd", "saved_by_routing_usd", "extra_from_routing_usd")
    places = usd_places(body[key] for key in money)
    rows = [
        ("requests", count(body["requests"])),
        ("settled", count(body["settled"])),
        ("input tokens", count(body["input_tokens"])),
        ("cached input tokens", count(body["cached_input_tokens"])),
        ("output tokens", count(body["output_tokens"])),
        ("total tokens", count(body["total_tokens"])),
        ("cost", usd(body["cost_usd"], places)),
        ("unpriced requests", count(body["unpriced_requests"])),
        ("avg latency", "—" if latency is None else f"{latency:,.1f} ms"),
        ("blocked", count(body["blocked"])),
        ("would block (dry run)", count(body["would_blocked"])),
        ("rerouted", count(body["rerouted"])),
        ("saved by routing", usd(body["saved_by_routing_usd"], places)),
        ("extra from routing", usd(body["extra_from_routing_usd"], places)),
    ]
    _heading("Usage", body)
    print_table(
        [{"metric": name, "value": value} for name, value in rows],
        [("metric", "metric"), ("value", "value")],
    )


def _metric_value(row: Mapping[str, Any], metric: Metric) -> float:
    if metric is Metric.COST:
        return float(row["cost_usd"])
    if metric is Metric.TOKENS:
        return float(row["total_tokens"])
    return float(row["requests"])


def _bar(value: float, peak: float) -> str:
    if peak <= 0 or value <= 0:
        return ""
    # At least one block for any non-zero bucket, so small but real usage stays visible.
    return "█" * max(1, round(value / peak * _BAR_WIDTH))


def _bucket_label(point: Mapping[str, Any], bucket: Bucket) -> str:
    start, end = datetime.fromisoformat(point["start"]), datetime.fromisoformat(point["end"])
    if bucket is Bucket.HOUR:
        return start.strftime("%Y-%m-%d %H:%M %z")
    hours = (end - start).total_seconds() / 3600
    # A local day across a DST change is 23 or 25 hours long: say so.
    return start.strftime("%Y-%m-%d") + ("" if hours == 24 else f" ({hours:g} h)")


@usage_app.command("timeline")
def timeline_command(
    ctx: typer.Context,
    bucket: Annotated[Bucket, typer.Option("--bucket", help="Bucket size.")] = Bucket.HOUR,
    tz: Annotated[
        str, typer.Option("--tz", help="IANA timezone whose calendar the buckets follow.")
    ] = "UTC",
    metric: Annotated[Metric, typer.Option("--metric", help="What the bar shows.")] = Metric.COST,
    since: Since = None,
    until: Until = None,
    window: Window = None,
    project: Project = None,
    principal: Principal = None,
    api_key: ApiKey = None,
    agent: Agent = None,
    session: Session = None,
    model: Model = None,
    provider: Provider = None,
    as_json: JsonOption = False,
) -> None:
    """Usage per local hour or day of --tz (empty buckets included), with a bar column."""
    from spendgate.cli.client import client_from

    params = _params(
        bucket=bucket.value, tz=tz, since=since, until=until, window=window, project=project,
        principal=principal, api_key=api_key, agent=agent, session=session, model=model,
        provider=provider,
    )  # fmt: skip
    with cli_errors():
        body = client_from(ctx).get("/usage/timeline", params)
    if as_json:
        print_json(body)
        return
    points = body["data"]
    peak = max((_metric_value(p, metric) for p in points), default=0.0)
    rows = [
        {
            "bucket": _bucket_label(p, bucket),
            "requests": p["requests"],
            "tokens": p["total_tokens"],
            "cost": cost,
            "unpriced": p["unpriced_requests"],
            "blocked": p["blocked"],
            "rerouted": p["rerouted"],
            "bar": _bar(_metric_value(p, metric), peak),
        }
        for p, cost in zip(points, _costs(points), strict=True)
    ]
    columns = [
        Column("bucket", f"{bucket.value} ({body['tz']})"),
        Column("requests", "requests", priority=2),
        Column("tokens", "tokens", priority=3),
        Column("cost", "cost", priority=1),
        Column("unpriced", "unpriced", priority=4),
        Column("blocked", "blocked", priority=5),
        Column("rerouted", "rerouted", priority=6),
        Column("bar", metric.value, priority=7),
    ]
    _heading("Timeline", body)
    print_table(rows, columns)


@usage_app.command("top")
def top_command(
    ctx: typer.Context,
    by: Annotated[By, typer.Option("--by", help="Group by this dimension.")] = By.MODEL,
    metric: Annotated[Metric, typer.Option("--metric", help="Order by.")] = Metric.COST,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many.")] = 10,
    since: Since = None,
    until: Until = None,
    window: Window = None,
    project: Project = None,
    principal: Principal = None,
    api_key: ApiKey = None,
    agent: Agent = None,
    session: Session = None,
    model: Model = None,
    provider: Provider = None,
    as_json: JsonOption = False,
) -> None:
    """The largest consumers: models, projects, principals, providers, agents, sessions, keys."""
    from spendgate.cli.client import client_from

    params: dict[str, Any] = _params(
        by=by.value, metric=metric.value, since=since, until=until, window=window,
        project=project, principal=principal, api_key=api_key, agent=agent, session=session,
        model=model, provider=provider,
    )  # fmt: skip
    params["limit"] = limit
    with cli_errors():
        body = client_from(ctx).get("/usage/top", params)
    if as_json:
        print_json(body)
        return
    rows = [
        {
            "key": entry["key"] if entry["key"] is not None else f"(no {by.value})",
            "requests": entry["requests"],
            "tokens": entry["total_tokens"],
            "cost": cost,
            "unpriced": entry["unpriced_requests"],
            "blocked": entry["blocked"],
            "rerouted": entry["rerouted"],
        }
        for entry, cost in zip(body["data"], _costs(body["data"]), strict=True)
    ]
    shown = len(rows)
    more = body["total_groups"] - shown
    _heading(
        f"Top {by.value} by {metric.value}," + (f" {more} more not shown," if more > 0 else ""),
        body,
    )
    print_table(
        rows,
        [
            Column("key", by.value),
            Column("cost", "cost", priority=1),
            Column("requests", "requests", priority=2),
            Column("tokens", "tokens", priority=3),
            Column("unpriced", "unpriced", priority=4),
            Column("blocked", "blocked", priority=5),
            Column("rerouted", "rerouted", priority=6),
        ],
    )


@contextmanager
def _destination(output: Path | None) -> Iterator[TextIO]:
    if output is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    with output.open("w", encoding="utf-8", newline="") as handle:
        yield handle


def _csv_page(text: str) -> tuple[str, str, int, str | None]:
    """(header line, body, row count, id of the last row) of one CSV page."""
    header, _, body = text.partition("\r\n")
    rows = list(csv.reader(io.StringIO(body)))
    return header, body, len(rows), rows[-1][0] if rows else None


@usage_app.command("export")
def export_command(
    ctx: typer.Context,
    format: Annotated[Format, typer.Option("--format", help="csv or json.")] = Format.CSV,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    since: Since = None,
    until: Until = None,
    window: Window = None,
    project: Project = None,
    principal: Principal = None,
    api_key: ApiKey = None,
    agent: Agent = None,
    session: Session = None,
    model: Model = None,
    provider: Provider = None,
) -> None:
    """Every routing decision in the range (one row each), oldest first.

    Downloads page by page (5000 rows each) with a progress bar on stderr, and writes one CSV
    (one header line) or one JSON document shaped like the API's, to --output or stdout."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from spendgate.cli.client import client_from

    filters = _params(
        project=project, principal=principal, api_key=api_key, agent=agent, session=session,
        model=model, provider=provider,
    )  # fmt: skip
    client = client_from(ctx)
    with cli_errors():
        # The summary fixes the range once (a default "last 24 h" must not move between pages)
        # and tells how many rows to expect.
        summary = client.get(
            "/usage/summary", {**_params(since=since, until=until, window=window), **filters}
        )
    window_body = summary["window"]
    base = {**filters, "since": window_body["start"], "until": window_body["end"]}
    progress = Progress(
        TextColumn("exporting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("decisions"),
        console=Console(stderr=True),
        transient=True,
    )
    rows_json: list[Any] = []
    head: dict[str, Any] = {}
    after: str | None = None
    written = 0
    with cli_errors(), progress, _destination(output) as sink:
        task = progress.add_task("export", total=summary["requests"] or None)
        while True:
            page = {**base, "format": format.value, "limit": _EXPORT_PAGE}
            if after is not None:
                page["after"] = after
            if format is Format.CSV:
                header, body, count, last = _csv_page(client.get_text("/usage/export", page))
                if written == 0:
                    sink.write(header + "\r\n")
                sink.write(body)
            else:
                document = client.get("/usage/export", page)
                head = head or document
                rows_json.extend(document["data"])
                count = len(document["data"])
                last = document["next_after"]
            written += count
            progress.update(task, completed=written)
            if count < _EXPORT_PAGE or last is None:
                break
            after = last
        if format is Format.JSON:
            shaped = {
                "window": head.get("window", window_body),
                "filters": head.get("filters", summary["filters"]),
                "total": written,
                "limit": written,
                "data": rows_json,
                "truncated": False,
                "next_after": None,
            }
            sink.write(json.dumps(shaped, indent=2, ensure_ascii=False) + "\n")
    if output is not None:
        Console(stderr=True).print(f"wrote {written} decision(s) to {output}", highlight=False)
