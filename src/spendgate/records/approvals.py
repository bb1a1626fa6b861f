"""Budget-override approvals as the admin API serves them: who may read, ask and decide.

Reading: the admin token and admin keys read every request; an ``approver`` key also reads
those within its scope (its project, else its principal); any other key reads only its own,
and never another project's (they answer 404, as if absent). Deciding: the admin token and
admin keys decide every request, approvers those within their scope; a requester never
decides its own (403). Decisions take effect at once in this process: a grant joins the
governor's ``GrantBook`` and requests waiting for it are woken.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from spendgate.domain.approvals import ApprovalScope, ApprovalState, budget_subject, requester_of
from spendgate.domain.keys import APPROVER, ApiKey
from spendgate.domain.windows import window_for
from spendgate.gateway.approvals import ApprovalDesk
from spendgate.records.errors import (
    RecordConflictError,
    RecordForbiddenError,
    RecordInvalidError,
    RecordNotFoundError,
)
from spendgate.records.live import LiveState
from spendgate.store.approvals import ApprovalError
from spendgate.store.journal import Journal
from spendgate.store.records import Approval, ApprovalEvent

__all__ = ["ApprovalRecords", "Caller"]

audit = logging.getLogger("spendgate.audit")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls: ``key`` is None for the admin token."""

    actor: str
    key: ApiKey | None
    is_admin: bool

    @property
    def requester(self) -> str | None:
        key = self.key
        return None if key is None else requester_of(key.principal, key.id)

    def reads(self, approval: Approval) -> bool:
        if self.is_admin or approval.requester == self.requester:
            return True
        return self._approves(approval)

    def _approves(self, approval: Approval) -> bool:
        key = self.key
        if key is None or not key.has(APPROVER):
            return False
        if key.project is not None:
            return approval.project == key.project
        return key.principal is not None and approval.requester == key.principal

    def may_decide(self, approval: Approval) -> bool:
        return self.is_admin or self._approves(approval)


class ApprovalRecords:
    def __init__(self, live: LiveState, journal: Journal, desk: ApprovalDesk) -> None:
        self._live = live
        self._repository = journal.approvals
        self._desk = desk

    @property
    def pending_ttl_s(self) -> float:
        return self._desk.pending_ttl.total_seconds()

    # -- reading -----------------------------------------------------------------------------

    def find(
        self,
        caller: Caller,
        *,
        state: ApprovalState | None = None,
        policy_id: str | None = None,
        requester: str | None = None,
        limit: int = 100,
    ) -> list[Approval]:
        """Newest first, only what ``caller`` may read."""
        found = self._repository.list_approvals(
            state=state,
            subject=None if policy_id is None else budget_subject(policy_id),
            requester=requester,
            limit=10_000,
        )
        return [approval for approval in found if caller.reads(approval)][:limit]

    def get(self, caller: Caller, approval_id: str) -> tuple[Approval, list[ApprovalEvent]]:
        approval = self._readable(caller, approval_id)
        return approval, self._repository.events(approval_id)

    def _readable(self, caller: Caller, approval_id: str) -> Approval:
        approval = self._repository.get(approval_id)
        if approval is None or not caller.reads(approval):
            raise RecordNotFoundError("approval request", approval_id)
        return approval

    # -- asking --------------------------------------------------------------------------------

    def request(
        self,
        caller: Caller,
        policy_id: str,
        reason: str,
        *,
        amount: Decimal | None = None,
        session_id: str | None = None,
    ) -> tuple[Approval, bool]:
        """Ask ahead for an override of a policy that applies to the caller's key: the
        pending request (``created`` False when one was already pending)."""
        key = caller.key
        if key is None:
            raise RecordInvalidError([("", "ask with the API key the override is for")])
        policy = self._live.policy(policy_id)
        if policy is None:
            raise RecordNotFoundError("budget", policy_id)
        member = key.scopes(session=session_id).matched_member(policy.scope)
        if member is None:
            raise RecordInvalidError(
                [("policy_id", f"the budget {policy_id} does not apply to this key")]
            )
        if amount is not None and amount <= 0:
            raise RecordInvalidError([("amount", "must be greater than 0")])
        window = window_for(policy.interval, datetime.now(UTC))
        approval, created = self._repository.create_or_get_pending(
            budget_subject(policy_id),
            requester_of(key.principal, key.id),
            ttl=self._desk.pending_ttl,
            session_id=session_id,
            reason=reason,
            project=key.project,
            member=member,
            window_key=window.key,
            window_end=window.end,
            amount=amount,
        )
        if created:
            audit.info("approval %s requested by %s for budget %s", approval.id,
                       caller.actor, policy_id)  # fmt: skip
        return approval, created

    # -- deciding ------------------------------------------------------------------------------

    def approve(
        self,
        caller: Caller,
        approval_id: str,
        scope: ApprovalScope,
        *,
        until: datetime | None = None,
        session_id: str | None = None,
        amount: Decimal | None = None,
        note: str | None = None,
    ) -> Approval:
        approval = self._decidable(caller, approval_id)
        problems = []
        if scope is ApprovalScope.UNTIL and (until is None or until <= datetime.now(UTC)):
            problems.append(("until", "an 'until' approval needs a future time"))
        if scope is ApprovalScope.SESSION and not (session_id or approval.session_id):
            problems.append(("session_id", "name the session (the request came from none)"))
        if amount is not None and amount <= 0:
            problems.append(("amount", "must be greater than 0"))
        if problems:
            raise RecordInvalidError(problems)
        with _refusals():
            approved = self._repository.approve(
                approval_id, caller.actor, scope, until=until, extra_amount=amount,
                session_id=session_id, note=note,
            )  # fmt: skip
        grant = approved.grant()
        if grant is not None:
            self._live.governor.grants.put(grant)
        self._desk.decided(approval_id)
        audit.info("approval %s approved (%s) by %s", approval_id, scope.value, caller.actor)
        return approved

    def deny(self, caller: Caller, approval_id: str, reason: str) -> Approval:
        self._decidable(caller, approval_id)
        with _refusals():
            denied = self._repository.deny(approval_id, caller.actor, reason=reason)
        self._desk.decided(approval_id)
        audit.info("approval %s denied by %s", approval_id, caller.actor)
        return denied

    def _decidable(self, caller: Caller, approval_id: str) -> Approval:
        approval = self._readable(caller, approval_id)
        if approval.requester == caller.requester:
            raise RecordForbiddenError("A requester never decides its own approval request.")
        if not caller.may_decide(approval):
            raise RecordForbiddenError(
                "Deciding this request needs the admin token, an admin key, or an approver "
                "key of its project (else of its principal)."
            )
        if approval.state is not ApprovalState.PENDING:
            raise RecordConflictError(
                f"The approval request {approval_id} is {approval.state.value}, not pending."
            )
        return approval

    # -- housekeeping ----------------------------------------------------------------------------

    def expire_due(self, now: datetime | None = None) -> int:
        """Expire pending requests and ``until`` grants that are due; drop their grants."""
        expired = self._repository.expire_due(now)
        if expired:
            active = {a.id for a in self._repository.active_grants(now)}
            grants = self._live.governor.grants
            for approval_id in grants.ids() - active:
                grants.take(approval_id)
        return expired


@contextmanager
def _refusals() -> Iterator[None]:
    """The repository's refusals as the records' (a race lost between check and write)."""
    try:
        yield
    except ApprovalError as error:
        raise RecordConflictError(str(error)) from None
