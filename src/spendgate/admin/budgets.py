"""Admin API: budgets (``/api/v1/budgets``).

Each budget is listed with its live consumption in its current window, from the in-memory
ledger. Budgets from the config file are read-only (409 ``config_managed``); runtime budgets
are validated with the YAML's own ``budgets`` spec, so errors read the same and name the field.
Non-admin keys see only the budgets that apply to their own requests (and, for a ``*`` scope,
only their own member's consumption); every change needs admin.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response

from spendgate.admin.auth import Viewer
from spendgate.admin.context import AdminContext
from spendgate.admin.deps import get_context, get_viewer, require_admin
from spendgate.admin.errors import not_found
from spendgate.admin.records_views import (
    BudgetList,
    BudgetView,
    ExactNumbersRoute,
    InvalidBudgetView,
    body_schema,
    budget_view,
    record_errors,
)
from spendgate.config import BudgetSpec
from spendgate.domain.budgets import BudgetPolicy
from spendgate.domain.routing import TaskClass
from spendgate.records.budgets import BudgetFilter

__all__ = ["router"]

router = APIRouter(prefix="/budgets", tags=["budgets"], route_class=ExactNumbersRoute)

Context = Annotated[AdminContext, Depends(get_context)]
Reader = Annotated[Viewer, Depends(get_viewer)]
Admin = Annotated[Viewer, Depends(require_admin)]
BudgetId = Annotated[str, Path(min_length=1, max_length=200, description="The budget's id.")]
_ID = Query(min_length=1, max_length=200, pattern=r"^[^\x00]+$")

_CREATE_BODY = body_schema(
    BudgetSpec,
    "A budget, exactly like an entry of the config file's `budgets` section "
    "(`interval` may also be a string such as `daily`).",
)
_UPDATE_BODY = {
    "requestBody": {
        "required": True,
        "description": "The fields to change (top-level keys of a budget); `null` resets a "
        "field to its default. `metric`, `scope.kind` and `interval` cannot change.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def _own_member(viewer: Viewer, policy: BudgetPolicy) -> str | None:
    """The member a non-admin viewer's own requests count under (None: not theirs)."""
    if viewer.key is None:
        return None
    return viewer.key.scopes().matched_member(policy.scope)


def _view(ctx: AdminContext, viewer: Viewer, policy: BudgetPolicy) -> BudgetView:
    budgets = ctx.records.budgets
    if viewer.is_admin:
        return budget_view(policy, budgets.consumption(policy))
    member = _own_member(viewer, policy)
    return budget_view(policy, budgets.consumption(policy, [] if member is None else [member]))


def _visible(viewer: Viewer, policy: BudgetPolicy) -> bool:
    return viewer.is_admin or _own_member(viewer, policy) is not None


@router.get("", response_model=BudgetList, summary="List budgets with live consumption")
def list_budgets(ctx: Context, viewer: Reader) -> BudgetList:
    budgets = ctx.records.budgets
    policies = [p for p in budgets.all() if _visible(viewer, p)]
    invalid = budgets.invalid() if viewer.is_admin else ()
    return BudgetList(
        data=[_view(ctx, viewer, policy) for policy in policies],
        invalid=[InvalidBudgetView(id=i.id, source=i.source, problem=i.problem) for i in invalid],
    )


@router.get(
    "/effective",
    response_model=BudgetList,
    summary="Every enabled budget that applies to requests of the given scopes",
)
def effective_budgets(
    ctx: Context,
    viewer: Reader,
    project: Annotated[str | None, _ID] = None,
    principal: Annotated[str | None, _ID] = None,
    api_key: Annotated[str | None, _ID] = None,
    agent: Annotated[str | None, _ID] = None,
    session: Annotated[str | None, _ID] = None,
    model: Annotated[str | None, _ID] = None,
    provider: Annotated[str | None, _ID] = None,
    task_class: TaskClass | None = None,
) -> BudgetList:
    asked = {
        "project": project,
        "principal": principal,
        "api_key": api_key,
        "agent": agent,
        "session": session,
    }
    query = BudgetFilter(
        viewer.request_scopes(asked, "query"),
        model=model,
        provider=provider,
        task_class=None if task_class is None else task_class.value,
    )
    budgets = ctx.records.budgets
    return BudgetList(
        data=[
            budget_view(policy, budgets.consumption(policy, [member]))
            for policy, member in budgets.effective(query)
        ]
    )


@router.get("/{budget_id}", response_model=BudgetView, summary="One budget")
def get_budget(ctx: Context, viewer: Reader, budget_id: BudgetId) -> BudgetView:
    with record_errors():
        policy = ctx.records.budgets.get(budget_id)
    if not _visible(viewer, policy):
        raise not_found("budget", budget_id)  # do not reveal others' budgets exist
    return _view(ctx, viewer, policy)


@router.post(
    "",
    response_model=BudgetView,
    status_code=201,
    summary="Create a budget",
    openapi_extra=_CREATE_BODY,
)
def create_budget(
    ctx: Context, viewer: Admin, document: Annotated[dict[str, Any], Body()]
) -> BudgetView:
    with record_errors():
        policy = ctx.records.budgets.create(document, actor=viewer.actor)
    return _view(ctx, viewer, policy)


@router.put(
    "/{budget_id}",
    response_model=BudgetView,
    summary="Change fields of a runtime budget",
    openapi_extra=_UPDATE_BODY,
)
def update_budget(
    ctx: Context,
    viewer: Admin,
    budget_id: BudgetId,
    changes: Annotated[dict[str, Any], Body()],
) -> BudgetView:
    with record_errors():
        policy = ctx.records.budgets.update(budget_id, changes, actor=viewer.actor)
    return _view(ctx, viewer, policy)


@router.post("/{budget_id}/enable", response_model=BudgetView, summary="Enable a budget")
def enable_budget(ctx: Context, viewer: Admin, budget_id: BudgetId) -> BudgetView:
    with record_errors():
        policy = ctx.records.budgets.set_enabled(budget_id, True, actor=viewer.actor)
    return _view(ctx, viewer, policy)


@router.post("/{budget_id}/disable", response_model=BudgetView, summary="Disable a budget")
def disable_budget(ctx: Context, viewer: Admin, budget_id: BudgetId) -> BudgetView:
    with record_errors():
        policy = ctx.records.budgets.set_enabled(budget_id, False, actor=viewer.actor)
    return _view(ctx, viewer, policy)


@router.delete(
    "/{budget_id}", status_code=204, response_class=Response, summary="Delete a runtime budget"
)
def delete_budget(ctx: Context, viewer: Admin, budget_id: BudgetId) -> Response:
    with record_errors():
        ctx.records.budgets.delete(budget_id, actor=viewer.actor)
    return Response(status_code=204)
