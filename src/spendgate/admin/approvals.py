"""Admin API: budget-override approvals (``/api/v1/approvals``).

A request blocked by a ``require_approval`` hard limit creates one (the gateway's 403 names
it); a key may also ask ahead. The admin token, admin keys and approver keys (within their
project, else principal) approve or deny; a requester never decides its own. Who reads what:
``records.approvals``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from spendgate.admin.auth import Viewer
from spendgate.admin.context import AdminContext
from spendgate.admin.deps import get_context, get_viewer
from spendgate.admin.records_views import ExactNumbersRoute, record_errors
from spendgate.admin.views import money
from spendgate.domain.approvals import ApprovalScope, ApprovalState
from spendgate.records.approvals import Caller
from spendgate.store.records import Approval, ApprovalEvent

__all__ = ["caller_of", "router"]

router = APIRouter(prefix="/approvals", tags=["approvals"], route_class=ExactNumbersRoute)

Context = Annotated[AdminContext, Depends(get_context)]
Reader = Annotated[Viewer, Depends(get_viewer)]
ApprovalId = Annotated[str, Path(min_length=1, max_length=64, description="e.g. apr_…")]
_Id = Field(min_length=1, max_length=200)


class ApprovalOut(BaseModel):
    id: str
    state: str  # pending | approved | denied | expired | consumed
    subject: str  # usage-budget:<policy_id>
    policy_id: str
    requester: str  # the key's principal, else the key id
    project: str | None
    member: str  # the policy member it is about
    window_start: str  # the policy window's key (its UTC start)
    window_end: datetime | None
    reason: str | None  # the requester's
    amount: str | None  # asked for beyond the limit (policy's metric)
    session_id: str | None
    # The blocked request (decision_id, model, estimated_cost_usd) and the policy's state
    # then (metric, consumed, reserved, request_amount, hard_limit, window_end).
    context: dict[str, Any] | None
    created_at: datetime
    expires_at: datetime  # a pending request expires then
    scope: str | None  # once | session | until, once approved
    until: datetime | None
    granted_amount: str | None  # cap beyond the hard limit under the grant
    approver: str | None
    note: str | None  # the approver's note, or why it was denied
    decided_at: datetime | None
    consumed_at: datetime | None


class ApprovalEventOut(BaseModel):
    at: datetime
    event: str  # requested | approved | denied | expired | consumed
    actor: str | None
    detail: dict[str, Any] | None


class ApprovalDetail(ApprovalOut):
    events: list[ApprovalEventOut]


class ApprovalList(BaseModel):
    data: list[ApprovalOut]


class ApprovalAsk(BaseModel):
    policy_id: str = _Id
    reason: str = Field(min_length=1, max_length=2000)
    amount: Decimal | None = Field(default=None, description="beyond the limit, in its metric")
    session_id: str | None = Field(default=None, min_length=1, max_length=200)


class ApprovalGrant(BaseModel):
    scope: Literal["once", "session", "until"]
    until: datetime | None = Field(default=None, description="ISO 8601; scope 'until'")
    session_id: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="scope 'session' (default: the blocked request's session)",
    )  # fmt: skip
    amount: Decimal | None = Field(
        default=None, description="cap on spend beyond the hard limit, in the policy's metric"
    )
    note: str | None = Field(default=None, max_length=2000)


class ApprovalDenial(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


def caller_of(viewer: Viewer) -> Caller:
    return Caller(actor=viewer.actor, key=viewer.key, is_admin=viewer.is_admin)


def _view(approval: Approval) -> dict[str, Any]:
    return {
        "id": approval.id,
        "state": approval.state.value,
        "subject": approval.subject,
        "policy_id": approval.policy_id,
        "requester": approval.requester,
        "project": approval.project,
        "member": approval.member,
        "window_start": approval.window_key,
        "window_end": approval.window_end,
        "reason": approval.reason,
        "amount": money(approval.amount),
        "session_id": approval.session_id,
        "context": approval.context,
        "created_at": approval.created_at,
        "expires_at": approval.expires_at,
        "scope": approval.scope.value if approval.scope else None,
        "until": approval.until,
        "granted_amount": money(approval.extra_amount),
        "approver": approval.approver,
        "note": approval.note,
        "decided_at": approval.decided_at,
        "consumed_at": approval.consumed_at,
    }


def _detail(approval: Approval, events: list[ApprovalEvent]) -> ApprovalDetail:
    return ApprovalDetail(
        **_view(approval),
        events=[
            ApprovalEventOut(at=e.at, event=e.event, actor=e.actor, detail=e.detail) for e in events
        ],
    )


@router.get("", response_model=ApprovalList, summary="List approval requests, newest first")
def list_approvals(
    ctx: Context,
    viewer: Reader,
    state: Annotated[ApprovalState | None, Query()] = None,
    policy_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    requester: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ApprovalList:
    found = ctx.records.approvals.find(
        caller_of(viewer), state=state, policy_id=policy_id, requester=requester, limit=limit
    )
    return ApprovalList(data=[ApprovalOut(**_view(a)) for a in found])


@router.get("/{approval_id}", response_model=ApprovalDetail, summary="One request, with events")
def get_approval(ctx: Context, viewer: Reader, approval_id: ApprovalId) -> ApprovalDetail:
    with record_errors():
        approval, events = ctx.records.approvals.get(caller_of(viewer), approval_id)
    return _detail(approval, events)


@router.post(
    "",
    response_model=ApprovalDetail,
    status_code=201,
    summary="Ask ahead for an override of a budget that applies to this key",
    responses={200: {"model": ApprovalDetail, "description": "already pending"}},
)
def request_approval(
    ctx: Context, viewer: Reader, body: ApprovalAsk, response: Response
) -> ApprovalDetail:
    records = ctx.records.approvals
    with record_errors():
        approval, created = records.request(
            caller_of(viewer), body.policy_id, body.reason, amount=body.amount,
            session_id=body.session_id,
        )  # fmt: skip
        _, events = records.get(caller_of(viewer), approval.id)
    if not created:
        response.status_code = 200
    return _detail(approval, events)


@router.post("/{approval_id}/approve", response_model=ApprovalDetail, summary="Approve")
def approve(
    ctx: Context, viewer: Reader, approval_id: ApprovalId, body: ApprovalGrant
) -> ApprovalDetail:
    records = ctx.records.approvals
    with record_errors():
        records.approve(
            caller_of(viewer), approval_id, ApprovalScope(body.scope), until=body.until,
            session_id=body.session_id, amount=body.amount, note=body.note,
        )  # fmt: skip
        approval, events = records.get(caller_of(viewer), approval_id)
    return _detail(approval, events)


@router.post("/{approval_id}/deny", response_model=ApprovalDetail, summary="Deny")
def deny(
    ctx: Context, viewer: Reader, approval_id: ApprovalId, body: ApprovalDenial
) -> ApprovalDetail:
    records = ctx.records.approvals
    with record_errors():
        records.deny(caller_of(viewer), approval_id, body.reason)
        approval, events = records.get(caller_of(viewer), approval_id)
    return _detail(approval, events)
