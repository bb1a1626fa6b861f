"""Admin API: rate limits (``/api/v1/rate-limits``), admin only.

Entries read and write exactly like the config file's ``rate_limits`` section (so errors read
the same and name the field); those from the config file are read-only (409
``config_managed``). A change applies to the running gateway at once, and to other replicas
within a second (``records.watch``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Response
from pydantic import BaseModel

from spendgate.admin.auth import Viewer
from spendgate.admin.context import AdminContext
from spendgate.admin.deps import get_context, require_admin
from spendgate.admin.records_views import body_schema, record_errors
from spendgate.config.rate_limits import RateLimitSpec
from spendgate.records.rate_limits import rate_limit_document

__all__ = ["router"]

router = APIRouter(prefix="/rate-limits", tags=["rate limits"])

Context = Annotated[AdminContext, Depends(get_context)]
Admin = Annotated[Viewer, Depends(require_admin)]
LimitId = Annotated[str, Path(min_length=1, max_length=200, description="The rate limit's id.")]


class RateScopeView(BaseModel):
    kind: str
    id: str


class RateLimitView(BaseModel):
    id: str
    source: str  # config | api
    scope: RateScopeView
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    models: list[str] | None = None


class RateLimitList(BaseModel):
    data: list[RateLimitView]


def _view(spec: RateLimitSpec, source: str) -> RateLimitView:
    return RateLimitView.model_validate({**rate_limit_document(spec), "source": source})


@router.get("", response_model=RateLimitList, summary="List rate limits")
def list_rate_limits(ctx: Context, viewer: Admin) -> RateLimitList:
    return RateLimitList(data=[_view(*found) for found in ctx.records.rate_limits.all()])


@router.get("/{limit_id}", response_model=RateLimitView, summary="One rate limit")
def get_rate_limit(ctx: Context, viewer: Admin, limit_id: LimitId) -> RateLimitView:
    with record_errors():
        return _view(*ctx.records.rate_limits.get(limit_id))


@router.post(
    "",
    response_model=RateLimitView,
    status_code=201,
    summary="Create a rate limit",
    openapi_extra=body_schema(
        RateLimitSpec, "A rate limit, exactly like an entry of the config's `rate_limits`."
    ),
)
def create_rate_limit(
    ctx: Context, viewer: Admin, document: Annotated[dict[str, Any], Body()]
) -> RateLimitView:
    with record_errors():
        spec = ctx.records.rate_limits.create(document, actor=viewer.actor)
    return _view(spec, "api")


@router.put(
    "/{limit_id}",
    response_model=RateLimitView,
    summary="Change fields of a runtime rate limit",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The fields to change (top-level keys); `null` removes one.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
def update_rate_limit(
    ctx: Context, viewer: Admin, limit_id: LimitId, changes: Annotated[dict[str, Any], Body()]
) -> RateLimitView:
    with record_errors():
        spec = ctx.records.rate_limits.update(limit_id, changes, actor=viewer.actor)
    return _view(spec, "api")


@router.delete(
    "/{limit_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a runtime rate limit",
)
def delete_rate_limit(ctx: Context, viewer: Admin, limit_id: LimitId) -> Response:
    with record_errors():
        ctx.records.rate_limits.delete(limit_id, actor=viewer.actor)
    return Response(status_code=204)
