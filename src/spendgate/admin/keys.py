"""Admin API: API keys (``/api/v1/keys``).

A created or rotated key's secret (``sg-…``) is in that one answer only: the database keeps
its SHA-256 digest. Listing never shows a secret nor its digest; config keys are listed
read-only. Revoking or rotating takes effect on the gateway's very next request.
Non-admin keys may list only the keys within their own scope; every change needs admin.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path

from spendgate.admin.auth import Viewer
from spendgate.admin.context import AdminContext
from spendgate.admin.deps import get_context, get_viewer, require_admin
from spendgate.admin.records_views import (
    KeyList,
    KeyOut,
    KeySecretOut,
    body_schema,
    key_secret_view,
    key_view,
    record_errors,
)
from spendgate.records.keys import KeySpecIn

__all__ = ["router"]

router = APIRouter(prefix="/keys", tags=["keys"])

Context = Annotated[AdminContext, Depends(get_context)]
Reader = Annotated[Viewer, Depends(get_viewer)]
Admin = Annotated[Viewer, Depends(require_admin)]
KeyId = Annotated[str, Path(min_length=1, max_length=200, description="The key's id.")]


@router.get("", response_model=KeyList, summary="List API keys (never their secrets)")
def list_keys(ctx: Context, viewer: Reader) -> KeyList:
    views = [
        view
        for view in ctx.records.keys.all()
        if viewer.can_see(
            {"project": view.key.project, "principal": view.key.principal, "api_key": view.key.id}
        )
    ]
    return KeyList(data=[key_view(view) for view in views])


@router.post(
    "",
    response_model=KeySecretOut,
    status_code=201,
    summary="Create an API key (its secret is shown once)",
    openapi_extra=body_schema(
        KeySpecIn,
        "The key's identity: `principal`, `project`, `permissions` (admin, approver, "
        "override_routing_mode), optional `models` it may use and `id` (default: generated).",
    ),
)
def create_key(
    ctx: Context, viewer: Admin, document: Annotated[dict[str, Any], Body()]
) -> KeySecretOut:
    with record_errors():
        created = ctx.records.keys.create(document, actor=viewer.actor)
    return key_secret_view(created)


@router.delete("/{key_id}", response_model=KeyOut, summary="Revoke an API key at once")
def revoke_key(ctx: Context, viewer: Admin, key_id: KeyId) -> KeyOut:
    with record_errors():
        revoked = ctx.records.keys.revoke(key_id, actor=viewer.actor)
    return key_view(revoked)


@router.post(
    "/{key_id}/rotate",
    response_model=KeySecretOut,
    summary="Give a key a new secret (shown once); the old one stops working at once",
)
def rotate_key(ctx: Context, viewer: Admin, key_id: KeyId) -> KeySecretOut:
    with record_errors():
        rotated = ctx.records.keys.rotate(key_id, actor=viewer.actor)
    return key_secret_view(rotated)
