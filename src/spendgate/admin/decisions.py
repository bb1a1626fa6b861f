"""Admin API: routing decisions — ``GET /decisions`` (filters, newest first, cursor pages) and
``GET /decisions/{id}`` (full explanation, candidates, budget evaluations, actual usage).

Non-admin keys are confined to their own scope: a filter naming another project or principal
is refused (403), a single decision outside their scope is reported as unknown (404), so its
existence does not leak.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from spendgate.admin.auth import Viewer
from spendgate.admin.context import AdminContext
from spendgate.admin.deps import get_context, get_viewer
from spendgate.admin.errors import AdminError, not_found
from spendgate.admin.views import DecisionDetail, DecisionList, decision_detail, decision_summary
from spendgate.domain.routing import RoutingAction, RoutingMode, TaskClass
from spendgate.store.records import DecisionFilter

__all__ = ["router"]

router = APIRouter(tags=["decisions"])

MAX_LIMIT = 500


def _aware(at: datetime | None) -> datetime | None:
    """A time without offset is read as UTC (documented), so filters never depend on the
    server's local zone."""
    if at is None or at.tzinfo is not None:
        return at
    return at.replace(tzinfo=UTC)


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    """The opaque cursor is the offset of the next page in the filtered, newest-first list."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, number = text.partition(":")
        offset = int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        offset = -1
        kind = ""
    if kind != "o" or offset < 0:
        raise AdminError(
            422,
            "invalid_request",
            "query.cursor: not a cursor this API returned (use next_cursor from a list).",
            param="query.cursor",
        )
    return offset


@router.get("/decisions", summary="List routing decisions, newest first")
def list_decisions(
    ctx: Annotated[AdminContext, Depends(get_context)],
    viewer: Annotated[Viewer, Depends(get_viewer)],
    project: str | None = None,
    principal: str | None = None,
    api_key: str | None = None,
    agent: str | None = None,
    session: str | None = None,
    model: Annotated[str | None, Query(description="The actual model.")] = None,
    provider: str | None = None,
    action: Annotated[RoutingAction | None, Query(description="The routing action.")] = None,
    mode: RoutingMode | None = None,
    task_class: TaskClass | None = None,
    status: Annotated[str | None, Query(description="ok, refused, upstream_error, …")] = None,
    reason_code: str | None = None,
    since: Annotated[
        datetime | None, Query(description="ISO 8601; without an offset it is UTC.")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Exclusive; ISO 8601; without an offset it is UTC.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> DecisionList:
    since, until = _aware(since), _aware(until)
    if since is not None and until is not None and since >= until:
        raise AdminError(
            422, "invalid_request", "query.since must be before query.until.", param="query.since"
        )
    scoped = viewer.confine(
        {
            "project": project,
            "principal": principal,
            "api_key": api_key,
            "agent": agent,
            "session": session,
        }
    )
    filters = DecisionFilter(
        since=since,
        until=until,
        project=scoped["project"],
        principal=scoped["principal"],
        api_key=scoped["api_key"],
        agent=scoped["agent"],
        session=scoped["session"],
        model=model,
        provider=provider,
        mode=mode,
        task_class=task_class,
        routing_action=action,
        status=status,
        reason_code=reason_code,
    )
    offset = _decode_cursor(cursor) if cursor else 0
    rows = ctx.journal.list_decisions(limit + 1, filters, offset=offset)
    more = len(rows) > limit
    return DecisionList(
        data=[decision_summary(row) for row in rows[:limit]],
        next_cursor=_encode_cursor(offset + limit) if more else None,
    )


@router.get("/decisions/{decision_id}", summary="One routing decision in full")
def get_decision(
    ctx: Annotated[AdminContext, Depends(get_context)],
    viewer: Annotated[Viewer, Depends(get_viewer)],
    decision_id: Annotated[str, Path(max_length=200)],
) -> DecisionDetail:
    stored = ctx.journal.get_decision(decision_id)
    if stored is None:
        raise not_found("decision", decision_id)
    scopes = stored.decision.scopes
    visible = {"project": scopes.project, "principal": scopes.principal, "api_key": scopes.api_key}
    if not viewer.can_see(visible):
        raise not_found("decision", decision_id)
    return decision_detail(stored)
