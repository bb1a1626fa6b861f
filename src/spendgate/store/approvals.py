"""Budget-override approvals and their audit trail.

One pending request per (subject, requester) is guaranteed by the partial unique index
``uq_approvals_pending``, not by a check-then-insert: creation is ``INSERT … ON CONFLICT DO
NOTHING`` followed by reading the pending row back, so concurrent attempts (threads, workers,
replicas) all get the same request and exactly one of them creates it. Every state change is
a conditional ``UPDATE … WHERE state = <expected>`` plus an ``approval_events`` row in the same
transaction, so two approvers (or two consumers of a ``once`` grant) cannot both win.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select

from spendgate.domain.approvals import ApprovalScope, ApprovalState, budget_subject
from spendgate.store import schema
from spendgate.store.db import dialect_insert, write_engine
from spendgate.store.records import Approval, ApprovalEvent

__all__ = ["DEFAULT_APPROVAL_TTL", "ApprovalError", "ApprovalRepository", "budget_subject"]

DEFAULT_APPROVAL_TTL = timedelta(hours=24)
_T = schema.approvals


class ApprovalError(ValueError):
    """An approval cannot make this transition (not pending, expired, self-approval, …)."""


def _new_id() -> str:
    return f"apr_{secrets.token_hex(10)}"


def approval_from_row(row: Mapping[Any, Any]) -> Approval:
    scope = row["scope"]
    return Approval(
        id=row["id"],
        subject=row["subject"],
        requester=row["requester"],
        state=ApprovalState(row["state"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        scope=ApprovalScope(scope) if scope is not None else None,
        session_id=row["session_id"],
        until=row["until"],
        extra_amount=row["extra_amount"],
        approver=row["approver"],
        reason=row["reason"],
        decided_at=row["decided_at"],
        consumed_at=row["consumed_at"],
        project=row["project"],
        member=row["member"],
        window_key=row["window_key"],
        window_end=row["window_end"],
        amount=row["amount"],
        note=row["note"],
        context=row["context"],
    )


def _event(
    connection: Connection,
    approval_id: str,
    at: datetime,
    event: str,
    actor: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    connection.execute(
        schema.approval_events.insert().values(
            approval_id=approval_id, at=at, event=event, actor=actor, detail=detail
        )
    )


def _load(connection: Connection, approval_id: str) -> Approval | None:
    row = connection.execute(select(_T).where(_T.c.id == approval_id)).mappings().first()
    return None if row is None else approval_from_row(row)


class ApprovalRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._write = write_engine(engine)

    def create_or_get_pending(
        self,
        subject: str,
        requester: str,
        *,
        now: datetime | None = None,
        ttl: timedelta = DEFAULT_APPROVAL_TTL,
        session_id: str | None = None,
        reason: str | None = None,
        project: str | None = None,
        member: str = "",
        window_key: str = "",
        window_end: datetime | None = None,
        amount: Decimal | None = None,
        context: dict[str, Any] | None = None,
    ) -> tuple[Approval, bool]:
        """The pending request of ``requester`` for ``subject`` (on the policy ``member`` in
        the window ``window_key``), created if there is none.

        Returns ``(approval, created)``. A pending request past its expiry is expired first,
        so a new one can be made.
        """
        at = now or datetime.now(UTC)
        new_id = _new_id()
        same = and_(
            _T.c.subject == subject,
            _T.c.requester == requester,
            _T.c.member == member,
            _T.c.window_key == window_key,
        )
        with self._write.begin() as connection:
            self._expire(connection, at, same)
            insert = dialect_insert(connection, _T).values(
                id=new_id,
                subject=subject,
                requester=requester,
                state=ApprovalState.PENDING.value,
                session_id=session_id,
                reason=reason,
                created_at=at,
                expires_at=at + ttl,
                project=project,
                member=member,
                window_key=window_key,
                window_end=window_end,
                amount=amount,
                context=context,
            )
            connection.execute(
                insert.on_conflict_do_nothing(
                    index_elements=["subject", "requester", "member", "window_key"],
                    index_where=schema.APPROVAL_PENDING,
                )
            )
            row = (
                connection.execute(
                    select(_T).where(same, _T.c.state == ApprovalState.PENDING.value)
                )
                .mappings()
                .one()
            )
            created = row["id"] == new_id
            if created:
                _event(connection, new_id, at, "requested", requester, {"subject": subject})
        return approval_from_row(row), created

    def get(self, approval_id: str) -> Approval | None:
        with self._engine.connect() as connection:
            return _load(connection, approval_id)

    def list_approvals(
        self,
        *,
        state: ApprovalState | None = None,
        subject: str | None = None,
        requester: str | None = None,
        limit: int = 100,
    ) -> list[Approval]:
        query = select(_T).order_by(_T.c.created_at.desc(), _T.c.id).limit(limit)
        if state is not None:
            query = query.where(_T.c.state == state.value)
        if subject is not None:
            query = query.where(_T.c.subject == subject)
        if requester is not None:
            query = query.where(_T.c.requester == requester)
        with self._engine.connect() as connection:
            return [approval_from_row(row) for row in connection.execute(query).mappings()]

    def events(self, approval_id: str) -> list[ApprovalEvent]:
        table = schema.approval_events
        query = select(table).where(table.c.approval_id == approval_id).order_by(table.c.id)
        with self._engine.connect() as connection:
            return [
                ApprovalEvent(
                    id=row.id,
                    approval_id=row.approval_id,
                    at=row.at,
                    event=row.event,
                    actor=row.actor,
                    detail=row.detail,
                )
                for row in connection.execute(query)
            ]

    def approve(
        self,
        approval_id: str,
        approver: str,
        scope: ApprovalScope,
        *,
        now: datetime | None = None,
        until: datetime | None = None,
        extra_amount: Decimal | None = None,
        session_id: str | None = None,
        note: str | None = None,
    ) -> Approval:
        """Approve a pending request. ``until`` scope needs ``until``; ``session`` scope needs
        the session the request came from. Raises ``ApprovalError`` otherwise."""
        at = now or datetime.now(UTC)
        if scope is ApprovalScope.UNTIL and (until is None or until <= at):
            raise ApprovalError("an 'until' approval needs a future 'until' time")
        if extra_amount is not None and extra_amount <= 0:
            raise ApprovalError("extra_amount must be positive")
        values: dict[str, Any] = {
            "state": ApprovalState.APPROVED.value,
            "scope": scope.value,
            "until": until if scope is ApprovalScope.UNTIL else None,
            "extra_amount": extra_amount,
        }
        detail = {"scope": scope.value}
        if scope is ApprovalScope.UNTIL and until is not None:
            detail["until"] = until.isoformat()
        if session_id is not None and scope is ApprovalScope.SESSION:
            values["session_id"] = session_id  # else: the session the request came from
            detail["session_id"] = session_id
        if extra_amount is not None:
            detail["amount"] = str(extra_amount)
        if note is not None:
            detail["note"] = note
        return self._decide(approval_id, approver, at, values, "approved", note, detail)

    def deny(
        self,
        approval_id: str,
        approver: str,
        *,
        now: datetime | None = None,
        reason: str | None = None,
    ) -> Approval:
        """Deny a pending request; ``reason`` is kept as its note."""
        at = now or datetime.now(UTC)
        values = {"state": ApprovalState.DENIED.value}
        detail = None if reason is None else {"reason": reason}
        return self._decide(approval_id, approver, at, values, "denied", reason, detail)

    def _decide(
        self,
        approval_id: str,
        approver: str,
        at: datetime,
        values: dict[str, Any],
        event: str,
        note: str | None,
        detail: dict[str, Any] | None,
    ) -> Approval:
        error: str | None = None
        decided: Approval | None = None
        with self._write.begin() as connection:
            self._expire(connection, at, _T.c.id == approval_id)
            current = _load(connection, approval_id)
            if current is None:
                raise ApprovalError(f"no approval {approval_id}")
            if current.state is not ApprovalState.PENDING:
                error = f"approval {approval_id} is {current.state.value}, not pending"
            elif current.requester == approver:
                error = "a requester cannot decide their own approval request"
            elif values.get("scope") == ApprovalScope.SESSION.value and not (
                values.get("session_id") or current.session_id
            ):
                error = "a 'session' approval needs a session: name one, or ask from a session"
            else:
                values = {**values, "approver": approver, "decided_at": at}
                if note is not None:
                    values["note"] = note
                connection.execute(
                    _T.update()
                    .where(_T.c.id == approval_id, _T.c.state == ApprovalState.PENDING.value)
                    .values(**values)
                )
                _event(connection, approval_id, at, event, approver, detail)
                decided = _load(connection, approval_id)
        # Raised after commit: an expiry found on the way is kept.
        if error is not None:
            raise ApprovalError(error)
        assert decided is not None
        return decided

    def consume(self, approval_id: str, *, now: datetime | None = None) -> bool:
        """Use up an approved ``once`` grant; True for exactly one caller."""
        at = now or datetime.now(UTC)
        with self._write.begin() as connection:
            result = connection.execute(
                _T.update()
                .where(
                    _T.c.id == approval_id,
                    _T.c.state == ApprovalState.APPROVED.value,
                    _T.c.scope == ApprovalScope.ONCE.value,
                )
                .values(state=ApprovalState.CONSUMED.value, consumed_at=at)
            )
            if result.rowcount != 1:
                return False
            _event(connection, approval_id, at, "consumed", None)
        return True

    def expire_due(self, now: datetime | None = None) -> int:
        """Expire pending requests past ``expires_at`` and ``until`` grants past ``until``."""
        with self._write.begin() as connection:
            return self._expire(connection, now or datetime.now(UTC), None)

    def active_grants(self, now: datetime | None = None) -> list[Approval]:
        """Approved, unconsumed grants still in force: what the governor caches in memory."""
        at = now or datetime.now(UTC)
        query = select(_T).where(
            _T.c.state == ApprovalState.APPROVED.value,
            or_(_T.c.scope != ApprovalScope.UNTIL.value, _T.c.until > at),
        )
        with self._engine.connect() as connection:
            return [approval_from_row(row) for row in connection.execute(query).mappings()]

    @staticmethod
    def _expire(connection: Connection, at: datetime, within: Any) -> int:
        due = or_(
            and_(_T.c.state == ApprovalState.PENDING.value, _T.c.expires_at <= at),
            and_(
                _T.c.state == ApprovalState.APPROVED.value,
                _T.c.scope == ApprovalScope.UNTIL.value,
                _T.c.until <= at,
            ),
        )
        condition = due if within is None else and_(within, due)
        ids = list(connection.execute(select(_T.c.id, _T.c.state).where(condition)))
        for approval_id, state in ids:
            result = connection.execute(
                _T.update()
                .where(_T.c.id == approval_id, _T.c.state == state)
                .values(state=ApprovalState.EXPIRED.value)
            )
            if result.rowcount == 1:
                _event(connection, approval_id, at, "expired", None)
        return len(ids)
