"""Alerts as the admin API serves them: who may read and acknowledge which.

The admin token and admin keys read and acknowledge every alert. Any other key reads only its
own tenant's alerts (``ApiKey.tenant``: its project, else its principal, else itself), and an
``approver`` key may acknowledge those; alerts of no tenant (providers, unpriced models, global
budgets) are the admins' alone. An alert a caller may not read answers 404, as if absent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from spendgate.domain.keys import APPROVER
from spendgate.records.approvals import Caller
from spendgate.records.errors import (
    RecordConflictError,
    RecordForbiddenError,
    RecordNotFoundError,
)
from spendgate.store.journal import Journal
from spendgate.store.records import Alert, AlertState, Delivery

__all__ = ["AlertRecords"]

audit = logging.getLogger("spendgate.audit")


def _reads(caller: Caller, alert: Alert) -> bool:
    return caller.is_admin or (caller.key is not None and alert.tenant == caller.key.tenant)


class AlertRecords:
    def __init__(self, journal: Journal) -> None:
        self._alerts = journal.alerts
        self._outbox = journal.outbox

    def find(
        self,
        caller: Caller,
        *,
        state: AlertState | None = None,
        kind: str | None = None,
        severity: str | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Newest first (by last seen), only what ``caller`` may read."""
        tenant = None if caller.is_admin or caller.key is None else caller.key.tenant
        return self._alerts.list_alerts(
            state=state, alert_kind=kind, severity=severity, tenant=tenant, limit=limit
        )

    def deliveries(self, alerts: Sequence[Alert]) -> dict[str, list[Delivery]]:
        """The deliveries of alerts already read (``find``): one query for all of them."""
        return self._outbox.for_subjects([alert.id for alert in alerts])

    def get(self, caller: Caller, alert_id: str) -> tuple[Alert, list[Delivery]]:
        alert = self._readable(caller, alert_id)
        return alert, self._outbox.for_subject(alert_id)

    def acknowledge(self, caller: Caller, alert_id: str) -> Alert:
        """Someone is on it: no reminders until it resolves. Acknowledging an acknowledged
        alert changes nothing; a resolved one cannot be."""
        alert = self._readable(caller, alert_id)
        key = caller.key
        if not caller.is_admin and (key is None or not key.has(APPROVER)):
            raise RecordForbiddenError(
                "Acknowledging an alert needs the admin token, an admin key, or an approver "
                "key of its tenant."
            )
        # The state is checked after the write, not before: the detector may resolve the alert
        # in between, and the store then acknowledges nothing.
        acknowledged = self._alerts.acknowledge(alert_id, caller.actor)
        alert = self._readable(caller, alert_id)
        if acknowledged:
            audit.info("alert %s acknowledged by %s", alert_id, caller.actor)
        elif alert.state is AlertState.RESOLVED:
            raise RecordConflictError(f"The alert {alert_id} is resolved already.")
        return alert

    def _readable(self, caller: Caller, alert_id: str) -> Alert:
        alert = self._alerts.get(alert_id)
        if alert is None or not _reads(caller, alert):
            raise RecordNotFoundError("alert", alert_id)
        return alert
