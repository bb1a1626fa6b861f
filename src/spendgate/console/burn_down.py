"""A budget member's burn-down: its use so far in the current window, per calendar bucket and
cumulated, from the admin API's usage timeline (the rollups), with the projected time the hard
limit is reached at the pace so far (``domain.alerts.exhaustion_forecast``, as the forecast
alert says it).

Drawn for what the usage timeline can filter by: a budget scoped to one project, principal,
key, agent or session (or global), measuring usd, tokens or settled requests, filtered by at
most one model and one provider. Others show their meter only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendgate.admin.context import AdminContext
from spendgate.admin.records_views import BudgetView, ConsumptionView
from spendgate.admin.usage import UsageQuery, usage_timeline
from spendgate.domain.alerts import exhaustion_forecast
from spendgate.domain.timeline import Bucket
from spendgate.domain.windows import Window
from spendgate.store.usage import UsageFilter

__all__ = ["burn_down"]

_SCOPE_FILTERS = {"project", "principal", "api_key", "agent", "session"}
# Long windows in days, short ones in hours: a few dozen bars either way.
_DAILY_FROM = timedelta(days=2)


def _filter(budget: BudgetView, member: str) -> UsageFilter | None:
    kind = budget.scope.kind
    if kind != "global" and kind not in _SCOPE_FILTERS:
        return None
    models, providers = budget.filters.models or [], budget.filters.providers or []
    if len(models) > 1 or len(providers) > 1 or budget.filters.task_classes:
        return None
    values: dict[str, str | None] = dict.fromkeys(_SCOPE_FILTERS)
    if kind != "global":
        values[kind] = member
    return UsageFilter(
        **values, model=models[0] if models else None, provider=providers[0] if providers else None
    )


def _amount(budget: BudgetView, point: Any) -> float:
    if budget.metric == "usd":
        return float(Decimal(point.cost_usd))
    if budget.metric == "tokens":
        return float(point.total_tokens)
    return float(point.settled)


def burn_down(
    ctx: AdminContext, budget: BudgetView, use: ConsumptionView, now: datetime | None = None
) -> dict[str, Any] | None:
    """The chart's data (bucket starts, cumulative use, the limit, the projection), or None
    when the budget cannot be drawn from the usage timeline."""
    usage_filter = _filter(budget, use.member)
    if usage_filter is None or budget.interval.kind == "rolling":
        return None
    at = now or datetime.now(UTC)
    window = Window(use.window.start, use.window.end)
    bucket = Bucket.DAY if window.end - window.start >= _DAILY_FROM else Bucket.HOUR
    query = UsageQuery(
        window.start.isoformat(), min(at, window.end).isoformat(), None, usage_filter
    )
    timeline = usage_timeline(ctx, query, bucket, budget.interval.timezone or "UTC")
    total = 0.0
    cumulative = []
    for point in timeline.data:
        total += _amount(budget, point)
        cumulative.append(round(total, 9))
    limit = Decimal(budget.hard_limit)
    settled = Decimal(use.settled)
    forecast = exhaustion_forecast(settled, limit, window, at)
    elapsed = (at - window.start).total_seconds()
    pace = float(settled) / elapsed if elapsed > 0 else 0.0
    return {
        "starts": [int(point.start.timestamp()) for point in timeline.data],
        "used": cumulative,
        "limit": float(limit),
        "end": int(window.end.timestamp()),
        "now": int(at.timestamp()),
        "settled": float(settled),
        # At the pace so far, where the window would end (the dashed line).
        "projected_at_end": float(settled) + pace * max(0.0, (window.end - at).total_seconds()),
        "exhausted_at": None if forecast is None else int(forecast.timestamp()),
        "exhausted_at_text": None if forecast is None else forecast.strftime("%Y-%m-%d %H:%M"),
        "tz": timeline.tz,
        "metric": budget.metric,
    }
