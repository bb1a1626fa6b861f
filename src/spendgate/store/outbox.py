"""The webhook outbox: deliveries written in the transaction that records their event, sent
until the receiver takes them.

An event (an alert opened or resolved, an approval requested or decided) becomes one row per
webhook that wants it, in the same transaction as the event itself, so a crash can lose
neither: the notifier finds every pending row after a restart. A row's ``id`` is the delivery
id the receiver sees on each attempt (its key for discarding a duplicate: delivery is
at-least-once), and ``body`` the exact bytes that are signed and sent each time.

Approval events are written by the approvals store; ``relay_approval_events`` turns those not
relayed yet into deliveries, moving a cursor in the same transaction (exactly once into the
outbox, however often it runs or crashes).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from spendgate.store import schema
from spendgate.store.approvals import approval_from_row
from spendgate.store.db import write_engine
from spendgate.store.records import Approval, ApprovalEvent, Delivery, DeliveryState

__all__ = ["OutboxItem", "WebhookOutbox", "enqueue", "new_delivery_id"]

_T = schema.webhook_deliveries
_APPROVAL_CURSOR = "approval_events"


def new_delivery_id() -> str:
    return f"dlv_{secrets.token_hex(10)}"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One delivery to write: the event for one webhook, its body already encoded."""

    webhook_id: str
    event: str
    subject_id: str
    body: bytes


def enqueue(connection: Connection, items: Sequence[OutboxItem], at: datetime) -> None:
    """Write ``items`` as pending deliveries in the caller's transaction."""
    if not items:
        return
    connection.execute(
        _T.insert(),
        [
            {
                "id": new_delivery_id(),
                "webhook_id": item.webhook_id,
                "event": item.event,
                "subject_id": item.subject_id,
                "body": item.body.decode(),
                "state": DeliveryState.PENDING.value,
                "attempts": 0,
                "next_attempt_at": at,
                "created_at": at,
            }
            for item in items
        ],
    )


def _delivery(row: Mapping[Any, Any]) -> Delivery:
    return Delivery(
        id=row["id"],
        webhook_id=row["webhook_id"],
        event=row["event"],
        subject_id=row["subject_id"],
        body=row["body"].encode(),
        state=DeliveryState(row["state"]),
        attempts=int(row["attempts"]),
        next_attempt_at=row["next_attempt_at"],
        last_status=row["last_status"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
    )


# Builds the deliveries of one approval event (None from a builder: nothing to send).
ApprovalAnnouncer = Callable[[Approval, ApprovalEvent], Sequence[OutboxItem]]


class WebhookOutbox:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._write = write_engine(engine)

    def add(self, items: Sequence[OutboxItem], *, now: datetime | None = None) -> None:
        with self._write.begin() as connection:
            enqueue(connection, items, now or datetime.now(UTC))

    def due(self, now: datetime | None = None, *, limit: int = 50) -> list[Delivery]:
        """Pending deliveries whose next attempt is due, oldest first."""
        query = (
            select(_T)
            .where(
                _T.c.state == DeliveryState.PENDING.value,
                _T.c.next_attempt_at <= (now or datetime.now(UTC)),
            )
            .order_by(_T.c.next_attempt_at, _T.c.created_at)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [_delivery(row) for row in connection.execute(query).mappings()]

    def pending_work(self) -> tuple[bool, datetime | None]:
        """(whether approval events wait to be relayed, when the earliest pending delivery is
        due — None: nothing is pending), in one round trip: what an idle notifier asks."""
        events = schema.approval_events
        cursor = schema.outbox_cursors
        position = (
            select(cursor.c.position).where(cursor.c.name == _APPROVAL_CURSOR).scalar_subquery()
        )
        query = select(
            select(events.c.id).where(events.c.id > position).limit(1).exists(),
            select(func.min(_T.c.next_attempt_at))
            .where(_T.c.state == DeliveryState.PENDING.value)
            .scalar_subquery(),
        )
        with self._engine.connect() as connection:
            waiting, due = connection.execute(query).one()
        if isinstance(due, str):  # SQLite: an aggregate loses the column's type
            due = datetime.fromisoformat(due).replace(tzinfo=UTC)
        return bool(waiting), due

    def claim(self, delivery_id: str, *, until: datetime, now: datetime | None = None) -> bool:
        """Take a due delivery for one attempt: its next attempt moves to ``until`` (when it
        is due again should this attempt never be recorded), and only if it was still pending
        and due. False: another notifier took it (two may run at once while a replica cannot
        reach the lease that elects one), or it is not due any more."""
        at = now or datetime.now(UTC)
        with self._write.begin() as connection:
            result = connection.execute(
                _T.update()
                .where(
                    _T.c.id == delivery_id,
                    _T.c.state == DeliveryState.PENDING.value,
                    _T.c.next_attempt_at <= at,
                )
                .values(next_attempt_at=until)
            )
            return int(result.rowcount) == 1

    def record_attempt(
        self,
        delivery_id: str,
        *,
        state: DeliveryState,
        status: int | None,
        error: str | None,
        next_attempt_at: datetime | None = None,
        now: datetime | None = None,
    ) -> None:
        """One more attempt: ``delivered``, ``failed`` (given up), or still ``pending`` until
        ``next_attempt_at``."""
        at = now or datetime.now(UTC)
        values: dict[str, Any] = {
            "state": state.value,
            "attempts": _T.c.attempts + 1,
            "last_status": status,
            "last_error": error,
        }
        if state is DeliveryState.PENDING:
            values["next_attempt_at"] = next_attempt_at or at
        else:
            values["finished_at"] = at
        with self._write.begin() as connection:
            connection.execute(_T.update().where(_T.c.id == delivery_id).values(**values))

    def for_subject(self, subject_id: str) -> list[Delivery]:
        return self.for_subjects([subject_id]).get(subject_id, [])

    def for_subjects(self, subject_ids: Sequence[str]) -> dict[str, list[Delivery]]:
        """The deliveries of each subject (oldest first), in one query."""
        query = (
            select(_T).where(_T.c.subject_id.in_(subject_ids)).order_by(_T.c.created_at, _T.c.id)
        )
        found: dict[str, list[Delivery]] = {}
        with self._engine.connect() as connection:
            for row in connection.execute(query).mappings():
                found.setdefault(row["subject_id"], []).append(_delivery(row))
        return found

    def get(self, delivery_id: str) -> Delivery | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(_T).where(_T.c.id == delivery_id)).mappings().first()
        return None if row is None else _delivery(row)

    def prune(self, before: datetime) -> int:
        """Delete deliveries that finished (delivered or failed) before ``before``; pending
        ones stay whatever their age."""
        with self._write.begin() as connection:
            result = connection.execute(
                _T.delete().where(
                    _T.c.state != DeliveryState.PENDING.value, _T.c.finished_at < before
                )
            )
            return int(result.rowcount)

    def counts(self) -> dict[str, int]:
        """Deliveries by state."""
        query = select(_T.c.state, func.count()).group_by(_T.c.state)
        with self._engine.connect() as connection:
            return {state: int(count) for state, count in connection.execute(query)}

    # -- approval events -----------------------------------------------------------------------

    def start_relay(self) -> None:
        """Relay approval events from now on: a first start does not replay history."""
        with self._write.begin() as connection:
            if _cursor(connection) is None:
                latest = connection.execute(select(func.max(schema.approval_events.c.id))).scalar()
                connection.execute(
                    schema.outbox_cursors.insert().values(
                        name=_APPROVAL_CURSOR, position=int(latest or 0)
                    )
                )

    def relay_approval_events(
        self, announce: ApprovalAnnouncer, *, now: datetime | None = None, limit: int = 500
    ) -> int:
        """Turn approval events written since the last relay into deliveries; returns how many
        events were relayed."""
        events = schema.approval_events
        with self._engine.connect() as connection:  # most of the time there is nothing new
            position = _cursor(connection)
            if (
                position is None
                or not connection.execute(
                    select(events.c.id).where(events.c.id > position).limit(1)
                ).first()
            ):
                return 0
        with self._write.begin() as connection:
            position = _cursor(connection)
            if position is None:
                return 0
            rows = list(
                connection.execute(
                    select(events).where(events.c.id > position).order_by(events.c.id).limit(limit)
                ).mappings()
            )
            if not rows:
                return 0
            approvals = _approvals(connection, {row["approval_id"] for row in rows})
            items: list[OutboxItem] = []
            for row in rows:
                approval = approvals.get(row["approval_id"])
                if approval is not None:
                    event = ApprovalEvent(
                        id=row["id"],
                        approval_id=row["approval_id"],
                        at=row["at"],
                        event=row["event"],
                        actor=row["actor"],
                        detail=row["detail"],
                    )
                    items.extend(announce(approval, event))
            enqueue(connection, items, now or datetime.now(UTC))
            connection.execute(
                schema.outbox_cursors.update()
                .where(schema.outbox_cursors.c.name == _APPROVAL_CURSOR)
                .values(position=rows[-1]["id"])
            )
            return len(rows)


def _cursor(connection: Connection) -> int | None:
    cursors = schema.outbox_cursors
    position = connection.execute(
        select(cursors.c.position).where(cursors.c.name == _APPROVAL_CURSOR)
    ).scalar()
    return None if position is None else int(position)


def _approvals(connection: Connection, ids: set[str]) -> dict[str, Approval]:
    rows = connection.execute(select(schema.approvals).where(schema.approvals.c.id.in_(ids)))
    return {row["id"]: approval_from_row(row) for row in rows.mappings()}
