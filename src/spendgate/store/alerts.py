"""Alerts, deduplicated: a repeat of an unresolved alert bumps its count instead of adding a row.

"Unresolved" (``open`` or ``acknowledged``) alerts are unique per ``dedupe_key`` by the partial
index ``uq_alerts_dedupe_key_unresolved``; ``upsert`` is one ``INSERT … ON CONFLICT DO UPDATE``
on it, so concurrent evaluators cannot create duplicates. A repeat keeps an acknowledged alert
acknowledged (somebody is on it) but refreshes its severity, texts and ``last_seen``. After
``resolve``, the next occurrence opens a new alert.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, select

from spendgate.store import schema
from spendgate.store.db import dialect_insert, write_engine
from spendgate.store.records import Alert, AlertState

__all__ = ["AlertRepository"]

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
    )


def _unresolved(connection: Connection, dedupe_key: str) -> Mapping[Any, Any] | None:
    query = select(_T).where(_T.c.dedupe_key == dedupe_key, _T.c.state.in_(_UNRESOLVED))
    return connection.execute(query).mappings().first()


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
        now: datetime | None = None,
    ) -> tuple[Alert, bool]:
        """Open an alert, or count one more occurrence of the unresolved one with this key.

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
                occurrences=1,
                first_seen=at,
                last_seen=at,
                state=AlertState.OPEN.value,
            )
            excluded = insert.excluded
            connection.execute(
                insert.on_conflict_do_update(
                    index_elements=["dedupe_key"],
                    index_where=schema.ALERT_UNRESOLVED,
                    set_={
                        "occurrences": _T.c.occurrences + 1,
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
        return _alert(row), row["id"] == new_id

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
        limit: int = 100,
    ) -> list[Alert]:
        query = select(_T).order_by(_T.c.last_seen.desc(), _T.c.id).limit(limit)
        if state is not None:
            query = query.where(_T.c.state == state.value)
        if scope is not None:
            query = query.where(_T.c.scope == scope)
        if alert_kind is not None:
            query = query.where(_T.c.alert_kind == alert_kind)
        with self._engine.connect() as connection:
            return [_alert(row) for row in connection.execute(query).mappings()]

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

    def resolve(self, alert_id: str, *, now: datetime | None = None) -> bool:
        return self._resolve(_T.c.id == alert_id, now)

    def resolve_key(self, dedupe_key: str, *, now: datetime | None = None) -> bool:
        """Resolve the unresolved alert with this key (the condition cleared), if any."""
        return self._resolve(_T.c.dedupe_key == dedupe_key, now)

    def _resolve(self, match: ColumnElement[bool], now: datetime | None) -> bool:
        """Resolve the unresolved alert ``match`` selects; True if there was one."""
        with self._write.begin() as connection:
            result = connection.execute(
                _T.update()
                .where(match, _T.c.state.in_(_UNRESOLVED))
                .values(state=AlertState.RESOLVED.value, resolved_at=now or datetime.now(UTC))
            )
            return result.rowcount == 1
