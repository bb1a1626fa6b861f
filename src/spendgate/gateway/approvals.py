"""The gateway's side of budget-override approvals: asking, and waiting for the answer.

A request that needs an approval (enforced, a hard limit whose action is
``require_approval``) asks for one: the pending request of its requester on that policy
member and window is created, or found. Concurrent blocked requests in this process share one
creation (one database write); across processes the database's unique index makes them all
get the same request. With ``x-spendgate-approval-wait``, the request then waits for the
decision: woken at once by a decision made in this process, and checking the database every
second for one made elsewhere.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, timedelta
from decimal import Decimal

from spendgate.domain.approvals import ApprovalState, budget_subject, requester_of
from spendgate.domain.budgets import BudgetEvaluation
from spendgate.domain.keys import ApiKey
from spendgate.domain.routing import RoutingDecision
from spendgate.store.approvals import ApprovalRepository
from spendgate.store.records import Approval

__all__ = ["ApprovalDesk", "ApprovalNeeded"]

_POLL_S = 1.0


@dataclass(frozen=True, slots=True)
class ApprovalNeeded:
    """A refused request that asks for an approval: what the request is about."""

    key: ApiKey
    session: str | None
    decision: RoutingDecision
    evaluation: BudgetEvaluation


class ApprovalDesk:
    def __init__(
        self,
        repository: ApprovalRepository | None,
        *,
        pending_ttl: timedelta = timedelta(hours=24),
        max_wait_s: float = 300.0,
    ) -> None:
        self.repository = repository
        self.pending_ttl = pending_ttl
        self.max_wait_s = max_wait_s
        self._asking: dict[tuple[str, str, str, str], asyncio.Future[Approval]] = {}
        self._decided: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def ask(self, needed: ApprovalNeeded) -> Approval | None:
        """The pending approval request for ``needed`` (None without a journal)."""
        repository = self.repository
        if repository is None:
            return None
        self._loop = asyncio.get_running_loop()
        key, evaluation, decision = needed.key, needed.evaluation, needed.decision
        requester = requester_of(key.principal, key.id)
        subject = budget_subject(evaluation.policy_id)
        identity = (subject, requester, evaluation.member, evaluation.window.key)
        asking = self._asking.get(identity)
        if asking is None:
            context = {
                "decision_id": decision.id,
                "model": decision.target_model,
                "requested_model": decision.requested_model,
                "estimated_cost_usd": _text(decision.estimate.upper_usd),
                "metric": evaluation.metric.value,
                "consumed": _text(evaluation.consumed),
                "reserved": _text(evaluation.reserved),
                "request_amount": _text(evaluation.request_amount),
                "hard_limit": _text(evaluation.hard_limit),
                "window_end": evaluation.window.end.astimezone(UTC).isoformat(),
            }
            asking = asyncio.ensure_future(
                asyncio.to_thread(
                    lambda: repository.create_or_get_pending(
                        subject,
                        requester,
                        ttl=self.pending_ttl,
                        session_id=needed.session,
                        project=key.project,
                        member=evaluation.member,
                        window_key=evaluation.window.key,
                        window_end=evaluation.window.end,
                        context=context,
                    )[0]
                )
            )
            self._asking[identity] = asking
            asking.add_done_callback(lambda _: self._asking.pop(identity, None))
        return await asyncio.shield(asking)

    async def wait(self, approval_id: str, seconds: float) -> Approval | None:
        """The approval once it is no longer pending, or None if it still is after
        ``seconds``."""
        repository = self.repository
        if repository is None:
            return None
        self._loop = asyncio.get_running_loop()
        event = self._decided.setdefault(approval_id, asyncio.Event())
        deadline = asyncio.get_running_loop().time() + seconds
        try:
            while True:
                current = await asyncio.to_thread(repository.get, approval_id)
                if current is None or current.state is not ApprovalState.PENDING:
                    return current
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    return None
                try:
                    await asyncio.wait_for(event.wait(), min(left, _POLL_S))
                except TimeoutError:
                    continue
                event.clear()
        finally:
            if not event.is_set():
                self._decided.pop(approval_id, None)

    def decided(self, approval_id: str) -> None:
        """An approval was decided in this process (any thread): wake its waiters."""
        loop = self._loop
        if loop is not None and approval_id in self._decided:
            loop.call_soon_threadsafe(self._wake, approval_id)

    def _wake(self, approval_id: str) -> None:
        event = self._decided.get(approval_id)
        if event is not None:
            event.set()


def _text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"
