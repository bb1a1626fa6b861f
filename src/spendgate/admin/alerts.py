"""Admin API: alerts (``/api/v1/alerts``).

The alert detector opens and resolves alerts; people list them, read one with its webhook
deliveries, and acknowledge it. Who reads what: ``records.alerts``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from spendgate.admin.approvals import caller_of
from spendgate.admin.auth import Viewer
from spendgate.admin.context import AdminContext
from spendgate.admin.deps import get_context, get_viewer
from spendgate.admin.records_views import ExactNumbersRoute, record_errors
from spendgate.domain.alerts import AlertKind, Severity
from spendgate.store.records import Alert, AlertState, Delivery

__all__ = ["router"]

router = APIRouter(prefix="/alerts", tags=["alerts"], route_class=ExactNumbersRoute)

Context = Annotated[AdminContext, Depends(get_context)]
Reader = Annotated[Viewer, Depends(get_viewer)]
AlertId = Annotated[str, Path(min_length=1, max_length=64, description="e.g. alr_…")]


class AlertOut(BaseModel):
    id: str
    kind: str  # budget_threshold | budget_exhausted | cost_spike | spend_rate_anomaly | …
    severity: str  # info | warning | critical
    state: str  # open | acknowledged | resolved
    scope: str  # e.g. project:acme, provider:alpha, model:house-llm
    tenant: str | None  # whose it is besides the admins' (project:acme); None: admins' only
    summary: str
    reason: str
    recommended_action: str
    occurrences: int
    first_seen: datetime
    last_seen: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    announced_at: datetime | None  # last sent to webhooks


class DeliveryOut(BaseModel):
    id: str  # the x-spendgate-delivery-id the receiver sees, the same on every attempt
    webhook_id: str
    event: str  # alert.opened | alert.resolved
    state: str  # pending | delivered | failed
    attempts: int
    last_status: int | None  # the receiver's last HTTP status
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    finished_at: datetime | None


class AlertDetail(AlertOut):
    deliveries: list[DeliveryOut]


class AlertList(BaseModel):
    data: list[AlertOut]


def _view(alert: Alert) -> AlertOut:
    return AlertOut(
        id=alert.id,
        kind=alert.alert_kind,
        severity=alert.severity,
        state=alert.state.value,
        scope=alert.scope,
        tenant=alert.tenant,
        summary=alert.summary,
        reason=alert.reason,
        recommended_action=alert.recommended_action,
        occurrences=alert.occurrences,
        first_seen=alert.first_seen,
        last_seen=alert.last_seen,
        acknowledged_by=alert.acknowledged_by,
        acknowledged_at=alert.acknowledged_at,
        resolved_at=alert.resolved_at,
        announced_at=alert.announced_at,
    )


def _detail(alert: Alert, deliveries: list[Delivery]) -> AlertDetail:
    return AlertDetail(
        **_view(alert).model_dump(),
        deliveries=[
            DeliveryOut(
                id=d.id,
                webhook_id=d.webhook_id,
                event=d.event,
                state=d.state.value,
                attempts=d.attempts,
                last_status=d.last_status,
                last_error=d.last_error,
                next_attempt_at=d.next_attempt_at,
                created_at=d.created_at,
                finished_at=d.finished_at,
            )
            for d in deliveries
        ],
    )


@router.get("", response_model=AlertList, summary="List alerts, most recently seen first")
def list_alerts(
    ctx: Context,
    viewer: Reader,
    state: Annotated[AlertState | None, Query()] = None,
    kind: Annotated[AlertKind | None, Query()] = None,
    severity: Annotated[Severity | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AlertList:
    found = ctx.records.alerts.find(
        caller_of(viewer),
        state=state,
        kind=kind.value if kind else None,
        severity=severity.value if severity else None,
        limit=limit,
    )
    return AlertList(data=[_view(alert) for alert in found])


@router.get("/{alert_id}", response_model=AlertDetail, summary="One alert, with its deliveries")
def get_alert(ctx: Context, viewer: Reader, alert_id: AlertId) -> AlertDetail:
    with record_errors():
        alert, deliveries = ctx.records.alerts.get(caller_of(viewer), alert_id)
    return _detail(alert, deliveries)


@router.post("/{alert_id}/ack", response_model=AlertDetail, summary="Acknowledge an alert")
def acknowledge(ctx: Context, viewer: Reader, alert_id: AlertId) -> AlertDetail:
    records = ctx.records.alerts
    with record_errors():
        records.acknowledge(caller_of(viewer), alert_id)
        alert, deliveries = records.get(caller_of(viewer), alert_id)
    return _detail(alert, deliveries)
