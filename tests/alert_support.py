"""Alerts and their webhook deliveries written straight into a running test gateway's
database, as the detector and the notifier would: for the alerts admin API and CLI tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from admin_support import AdminGateway
from spendgate.store import Alert
from spendgate.store.journal import Journal
from spendgate.store.outbox import OutboxItem
from spendgate.store.records import Delivery, DeliveryState

__all__ = ["add_delivery", "raise_alert", "resolve"]


def _journal(gw: AdminGateway) -> Journal:
    journal = gw.served.journal
    assert journal is not None
    return journal


def raise_alert(
    gw: AdminGateway,
    key: str,
    *,
    kind: str = "cost_spike",
    severity: str = "warning",
    tenant: str | None = "project:acme",
    scope: str = "project:acme",
    reason: str = "A request cost $3.10, 31x the usual $0.10.",
    ago: timedelta = timedelta(0),
) -> Alert:
    """A new open alert (``key`` makes it distinct), last seen ``ago``."""
    alert, _ = _journal(gw).alerts.upsert(
        alert_kind=kind,
        severity=severity,
        scope=scope,
        summary=f"{kind} under {scope} ({key})",
        reason=reason,
        recommended_action="Look at the request.",
        dedupe_key=f"test|{key}",
        tenant=tenant,
        now=datetime.now(UTC) - ago,
    )
    return alert


def add_delivery(
    gw: AdminGateway, alert: Alert, webhook_id: str, event: str, *, failed: int | None = None
) -> Delivery:
    """A webhook delivery of ``alert``: pending, or given up after one attempt the receiver
    answered with the HTTP status ``failed``."""
    outbox = _journal(gw).outbox
    outbox.add([OutboxItem(webhook_id, event, alert.id, b'{"alert": "..."}')])
    [delivery] = [d for d in outbox.for_subject(alert.id) if d.webhook_id == webhook_id]
    if failed is not None:
        outbox.record_attempt(
            delivery.id, state=DeliveryState.FAILED, status=failed, error=f"HTTP {failed}"
        )
    return delivery


def resolve(gw: AdminGateway, alert: Alert) -> None:
    """The condition cleared: the detector resolves it."""
    assert _journal(gw).alerts.resolve(alert.id)
