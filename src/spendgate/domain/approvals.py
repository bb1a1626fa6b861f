"""Budget-override approvals: who asks, what a granted approval covers.

A request blocked by a ``require_approval`` limit asks for an override; once an approver
grants it, the grant lets the requester's later requests past that policy's hard limit (on
the same policy member): ``once`` for exactly one request, ``session`` for requests of one
session, ``until`` a time. Its ``extra`` caps what may be spent beyond the limit under it.
Pure: the time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from spendgate.domain.budgets import OverrideGrant

__all__ = [
    "ApprovalScope",
    "ApprovalState",
    "Grant",
    "budget_subject",
    "policy_of_subject",
    "requester_of",
]

_SUBJECT_PREFIX = "usage-budget:"


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CONSUMED = "consumed"


class ApprovalScope(StrEnum):
    ONCE = "once"
    SESSION = "session"
    UNTIL = "until"


def budget_subject(policy_id: str) -> str:
    return f"{_SUBJECT_PREFIX}{policy_id}"


def policy_of_subject(subject: str) -> str:
    return subject.removeprefix(_SUBJECT_PREFIX)


def requester_of(principal: str | None, key_id: str) -> str:
    """Who asks: the key's principal, else the key itself."""
    return principal or key_id


@dataclass(frozen=True, slots=True)
class Grant:
    """An approved override in force, as the gateway holds it in memory."""

    approval_id: str
    policy_id: str
    requester: str
    member: str  # the policy member it covers ('' : any, for requests asked before members)
    scope: ApprovalScope
    session_id: str | None = None
    until: datetime | None = None
    extra: Decimal | None = None  # cap beyond the hard limit, in the policy's metric

    def covers(self, session: str | None, now: datetime) -> bool:
        if self.scope is ApprovalScope.SESSION:
            return session is not None and session == self.session_id
        if self.scope is ApprovalScope.UNTIL:
            return self.until is not None and now < self.until
        return True

    def override(self) -> OverrideGrant:
        return OverrideGrant(
            self.policy_id, self.approval_id, self.extra, member=self.member or None
        )
