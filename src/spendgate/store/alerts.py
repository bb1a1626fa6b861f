"""Alerts, deduplicated: a repeat of an unresolved alert bumps its count instead of adding a row.

"Unresolved" (``open`` or ``acknowledged``) alerts are unique per ``dedupe_key`` by the partial
index ``uq_alerts_dedupe_key_unresolved``; ``upsert`` is one ``INSERT … ON CONFLICT DO UPDATE``
on it, so concurrent evaluators cannot create duplicates. A repeat keeps an acknowledged alert
acknowledged (somebody is on it) but refreshes its severity, texts and ``last_seen``. After
``resolve``, the next occurrence opens a new alert.

Announcing: given an ``announce`` builder, an alert that opens, or that is seen again while
open once ``cooldown`` has passed since it was last announced, is written to the webhook
outbox (``alert.opened``) in the same transaction; so is one that resolves
(``alert.resolved``). An acknowledged alert is not announced again until it resolves.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, func, select

from spendgate.store import schema
from spendgate.store.db import dialect_insert, write_engine
from spendgate.store.outbox import OutboxItem, enqueue
from spendgate.store.records import Alert, AlertState

__all__ = ["ALERT_OPENED", "ALERT_RESOLVED", "AlertAnnouncer", "AlertRepository"]

ALERT_OPENED = "alert.opened"
ALERT_RESOLVED = "alert.resolved"

# Builds the webhook deliveries of one alert event (``ALERT_OPENED`` / ``ALERT_RESOLVED``).
AlertAnnouncer = Callable[[Alert, str], Sequence[OutboxItem]]

_T = schema.alerts
_UNRESOLVED = (AlertState.OPEN.value, AlertState.ACKNOWLEDGED.value)


def _alert(row: Mapping[Any, Any]) -> Alert:
    return Alert(
        id=row["id"],
        alert_kind=row["alert_kind"],
        severity=row["severity"],
        scope=row["scope"],
        summary=row["summary"],
        reason=row["reason"],
        recommended_action=row["recommended_action"],
        dedupe_key=row["dedupe_key"],
        occurrences=int(row["occurrences"]),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        state=AlertState(row["state"]),
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=row["acknowledged_at"],
        resolved_at=row["resolved_at"],
        tenant=row["tenant"],
        announced_at=row["announced_at"],
    )


def _unresolved(connection: Connection, dedupe_key: str) -> Mapping[Any, Any] | None:
    query = select(_T).where(_T.c.dedupe_key == dedupe_key, _T.c.state.in_(_UNRESOLVED))
    return connection.execute(query).mappings().first()


def _due(alert: Alert, created: bool, at: datetime, cooldown: timedelta) -> bool:
    """Whether this occurrence is announced: a new alert, or an open one quiet for a cooldown."""
    if created:
        return True
    if alert.state is not AlertState.OPEN:
        return False
    return alert.announced_at is None or at - alert.announced_at >= cooldown


class AlertRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._write = write_engine(engine)

    def upsert(
        self,
        *,
        alert_kind: str,
        severity: str,
        scope: str,
        summary: str,
        reason: str,
        recommended_action: str,
        dedupe_key: str,
        tenant: str | None = None,
        occurrences: int = 1,
        now: datetime | None = None,
        announce: AlertAnnouncer | None = None,
        cooldown: timedelta = timedelta(minutes=15),
    ) -> tuple[Alert, bool]:
        """Open an alert, or count ``occurrences`` more of the unresolved one with this key;
        with ``announce``, write its deliveries when it is due (see the module docstring).

        Returns ``(alert, created)``.
        """
        at = now or datetime.now(UTC)
        new_id = f"alr_{secrets.token_hex(10)}"
        with self._write.begin() as connection:
            insert = dialect_insert(connection, _T).values(
                id=new_id,
                alert_kind=alert_kind,
                severity=severity,
                scope=scope,
                summary=summary,
                reason=reason,
                recommended_action=recommended_action,
                dedupe_key=dedupe_key,
                occurrences=occurrences,
                first_seen=at,
                last_seen=at,
                state=AlertState.OPEN.value,
                tenant=tenant,
            )
            excluded = insert.excluded
            connection.execute(
                insert.on_conflict_do_update(
                    index_elements=["dedupe_key"],
                    index_where=schema.ALERT_UNRESOLVED,
                    set_={
                        "occurrences": _T.c.occurrences + occurrences,
                        "last_seen": excluded.last_seen,
                        "severity": excluded.severity,
                        "summary": excluded.summary,
                        "reason": excluded.reason,
                        "recommended_action": excluded.recommended_action,
                    },
                )
            )
            row = _unresolved(connection, dedupe_key)
            assert row is not None
            alert = _alert(row)
            created = alert.id == new_id
            if announce is not None and _due(alert, created, at, cooldown):
                enqueue(connection, announce(alert, ALERT_OPENED), at)
                connection.execute(_T.update().where(_T.c.id == alert.id).values(announced_at=at))
        return alert, created

    def get(self, alert_id: str) -> Alert | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(_T).where(_T.c.id == alert_id)).mappings().first()
        return None if row is None else _alert(row)

    def list_alerts(
        self,
        *,
        state: AlertState | None = None,
        scope: str | None = None,
        alert_kind: str | None = None,
        severity: str | None = None,
        tenant: str | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Newest first; ``tenant`` set: that tenant's alerts only."""
        query = select(_T).order_by(_T.c.last_seen.desc(), _T.c.id).limit(limit)
        if state is not None:
            query = query.where(_T.c.state == state.value)
        if scope is not None:
            query = query.where(_T.c.scope == scope)
        if alert_kind is not None:
            query = query.where(_T.c.alert_kind == alert_kind)
        if severity is not None:
            query = query.where(_T.c.severity == severity)
        if tenant is not None:
            query = query.where(_T.c.tenant == tenant)
        with self._engine.connect() as connection:
            return [_alert(row) for row in connection.execute(query).mappings()]

    def unresolved(self) -> list[Alert]:
        """Every open or acknowledged alert (what a detector resumes from after a restart)."""
        query = select(_T).where(_T.c.state.in_(_UNRESOLVED)).order_by(_T.c.first_seen)
        with self._engine.connect() as connection:
            return [_alert(row) for row in connection.execute(query).mappings()]

    def open_counts(self) -> dict[tuple[str, str], int]:
        """Unresolved alerts by (kind, severity)."""
        query = (
            select(_T.c.alert_kind, _T.c.severity, func.count())
            .where(_T.c.state.in_(_UNRESOLVED))
            .group_by(_T.c.alert_kind, _T.c.severity)
        )
        with self._engine.connect() as connection:
            return {(kind, severity): int(n) for kind, severity, n in connection.execute(query)}

    def acknowledge(self, alert_id: str, actor: str, *, now: datetime | None = None) -> bool:
        with self._write.begin() as connection:
            result = connection.execute(
                _T.update()
                .where(_T.c.id == alert_id, _T.c.state == AlertState.OPEN.value)
                .values(
                    state=AlertState.ACKNOWLEDGED.value,
                    acknowledged_by=actor,
                    acknowledged_at=now or datetime.now(UTC),
                )
            )
            return result.rowcount == 1

    def resolve(
        self,
        alert_id: str,
        *,
        now: datetime | None = None,
        announce: AlertAnnouncer | None = None,
    ) -> bool:
        return self._resolve(_T.c.id == alert_id, now, announce)

    def count_on(self, dedupe_key: str, occurrences: int, *, now: datetime | None = None) -> bool:
        """Count ``occurrences`` more on the unresolved alert with this key, if there is one
        (never opening one: for what a condition left over as it cleared). True if counted."""
        at = now or datetime.now(UTC)
        with self._write.begin() as connection:
            result = connection.execute(
                _T.update()
                .where(_T.c.dedupe_key == dedupe_key, _T.c.state.in_(_UNRESOLVED))
                .values(occurrences=_T.c.occurrences + occurrences, last_seen=at)
            )
            return int(result.rowcount) > 0

    def resolve_key(
        self,
        dedupe_key: str,
        *,
        now: datetime | None = None,
        announce: AlertAnnouncer | None = None,
    ) -> bool:
        """Resolve the unresolved alert with this key (the condition cleared), if any."""
        return self._resolve(_T.c.dedupe_key == dedupe_key, now, announce)

    def _resolve(
        self, match: ColumnElement[bool], now: datetime | None, announce: AlertAnnouncer | None
    ) -> bool:
        """Resolve the unresolved alert ``match`` selects; True if there was one."""
        at = now or datetime.now(UTC)
        with self._write.begin() as connection:
            row = (
                connection.execute(select(_T).where(match, _T.c.state.in_(_UNRESOLVED)))
                .mappings()
                .first()
            )
            if row is None:
                return False
            connection.execute(
                _T.update()
                .where(_T.c.id == row["id"])
                .values(state=AlertState.RESOLVED.value, resolved_at=at)
            )
            if announce is not None:
                resolved = _alert({**row, "state": AlertState.RESOLVED.value, "resolved_at": at})
                enqueue(connection, announce(resolved, ALERT_RESOLVED), at)
            return True
