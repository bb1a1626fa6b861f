"""The Usage page's numbers, from the admin API's own usage services (one source of truth for
scoping and sums; the rollups when the filters allow, as the API chooses)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from spendgate.admin.auth import Viewer
from spendgate.admin.context import AdminContext
from spendgate.admin.usage import (
    UsageQuery,
    UsageSummary,
    usage_summary,
    usage_timeline_by_model,
    usage_top,
)
from spendgate.console.filters import Filters
from spendgate.records.approvals import Caller
from spendgate.store.records import AlertState, ApprovalState
from spendgate.store.usage import UsageFilter

__all__ = ["Metric", "UsageView", "usage_view"]

# Models drawn apart in the charts; the rest is stacked as "other".
CHART_MODELS = 5
TOP_ROWS = 8


@dataclass(frozen=True, slots=True)
class Metric:
    name: str  # data-metric
    label: str
    value: str  # data-value: the exact figure
    shown: str  # as people read it
    note: str = ""


@dataclass(frozen=True, slots=True)
class UsageView:
    filters: Filters
    summary: UsageSummary
    metrics: list[Metric]
    chart: dict[str, Any]  # for console.js: bucket starts, series by model
    tops: dict[str, list[dict[str, Any]]]  # by → rows


def usage_query(filters: Filters, viewer: Viewer) -> UsageQuery:
    """The admin API's usage query for these filters, confined to what ``viewer`` may read."""
    confined = viewer.confine(
        {
            "project": filters.project,
            "principal": filters.principal,
            "api_key": None,
            "agent": None,
            "session": None,
            "model": filters.model,
            "provider": None,
        }
    )
    bounds = filters.bounds()
    if bounds is not None:
        return UsageQuery(*bounds, None, UsageFilter(**confined))
    return UsageQuery(None, None, filters.window, UsageFilter(**confined))


def _usd(text: str) -> str:
    """Dollars for people: cents from $1, four decimals below, and "< $0.0001" (never a
    misleading $0.0000) for what is smaller but not nothing."""
    value = Decimal(text)
    if value == 0:
        return "$0"
    if value < Decimal("0.0001"):
        return "< $0.0001"
    return f"${value:,.2f}" if value >= 1 else f"${value:,.4f}"


def usage_view(ctx: AdminContext, viewer: Viewer, filters: Filters, caller: Caller) -> UsageView:
    query = usage_query(filters, viewer)
    summary = usage_summary(ctx, query)
    pending = len(ctx.records.approvals.find(caller, state=ApprovalState.PENDING, limit=1000))
    open_alerts = len(ctx.records.alerts.find(caller, state=AlertState.OPEN, limit=1000))
    unpriced = summary.unpriced_requests
    metrics = [
        Metric("requests", "Requests", str(summary.requests), f"{summary.requests:,}"),
        Metric(
            "tokens", "Tokens", str(summary.total_tokens), f"{summary.total_tokens:,}",
            f"{summary.input_tokens:,} in · {summary.output_tokens:,} out",
        ),
        Metric(
            "cost_usd", "Cost", summary.cost_usd, _usd(summary.cost_usd),
            f"+ {unpriced:,} unpriced request(s), not in this sum" if unpriced else "priced usage",
        ),
        Metric(
            "avg_latency_ms", "Avg latency",
            "" if summary.avg_latency_ms is None else f"{summary.avg_latency_ms}",
            "—" if summary.avg_latency_ms is None else f"{summary.avg_latency_ms:,.0f} ms",
        ),
        _p95(summary),
        Metric("blocked", "Blocked", str(summary.blocked), f"{summary.blocked:,}"),
        Metric("rerouted", "Rerouted", str(summary.rerouted), f"{summary.rerouted:,}"),
        Metric(
            "saved_by_routing_usd", "Saved by routing", summary.saved_by_routing_usd,
            _usd(summary.saved_by_routing_usd),
            f"extra {_usd(summary.extra_from_routing_usd)} from escalations",
        ),
        Metric("pending_approvals", "Pending approvals", str(pending), f"{pending:,}"),
        Metric("open_alerts", "Open alerts", str(open_alerts), f"{open_alerts:,}"),
    ]  # fmt: skip
    return UsageView(
        filters=filters,
        summary=summary,
        metrics=metrics,
        chart=_chart(ctx, viewer, filters),
        tops={by: _top(ctx, query, by) for by in ("model", "project", "principal", "agent")},
    )


def _p95(summary: UsageSummary) -> Metric:
    """The 95th percentile as the histogram bounds it: "≤ 1,500 ms", never a made-up exact
    figure; the requests it covers, when fewer than those settled."""
    p95, timed = summary.p95_latency_ms_at_most, summary.timed_requests
    if timed == 0:
        shown = "—"
    elif p95 is None:
        shown = "> 60,000 ms"
    else:
        shown = f"≤ {p95:,.0f} ms"
    note = "upper bound"
    if 0 < timed < summary.settled:
        note = f"upper bound, of {timed:,} timed requests"
    value = "" if p95 is None else f"{p95}"
    return Metric("p95_latency_ms", "p95 latency", value, shown, note)


def _top(ctx: AdminContext, query: UsageQuery, by: str) -> list[dict[str, Any]]:
    return [
        {
            "key": entry.key or "(none)",
            "cost": _usd(entry.cost_usd),
            "tokens": f"{entry.total_tokens:,}",
            "requests": f"{entry.requests:,}",
        }
        for entry in usage_top(ctx, query, by, "cost", TOP_ROWS).data  # type: ignore[arg-type]
    ]


def _chart(ctx: AdminContext, viewer: Viewer, filters: Filters) -> dict[str, Any]:
    """Cost and tokens per calendar bucket of the chosen timezone, stacked by model: the
    costliest models apart, the rest as "other" (one timeline query, split by model)."""
    query = usage_query(filters, viewer)
    timeline = usage_timeline_by_model(ctx, query, filters.time_bucket, filters.tz)
    lines = timeline.lines
    total_cost = {model: sum(p.cost_usd for p in line) for model, line in lines.items()}
    ranked = sorted(lines, key=lambda model: (-total_cost[model], model))
    shown, rest = ranked[:CHART_MODELS], ranked[CHART_MODELS:]
    series = [
        {
            "model": model or "(refused)",
            "cost": [float(p.cost_usd) for p in lines[model]],
            "tokens": [p.total_tokens for p in lines[model]],
        }
        for model in shown
    ]
    if rest:
        buckets = range(len(timeline.starts))
        series.append(
            {
                "model": "other",
                "cost": [float(sum(lines[m][i].cost_usd for m in rest)) for i in buckets],
                "tokens": [sum(lines[m][i].total_tokens for m in rest) for i in buckets],
            }
        )
    return {
        "starts": [int(start.timestamp()) for start in timeline.starts],
        "bucket": filters.time_bucket.value,
        "tz": filters.tz,
        "series": series,
    }
