"""FastAPI dependencies of the admin routers::

ctx: Annotated[AdminContext, Depends(get_context)]
viewer: Annotated[Viewer, Depends(get_viewer)]      # 401 without a valid credential
viewer: Annotated[Viewer, Depends(require_admin)]   # and 403 unless admin
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from spendgate.admin.auth import Viewer, authenticate
from spendgate.admin.context import AdminContext
from spendgate.admin.errors import AdminError, unauthorized
from spendgate.admin.gate import VIEWER

__all__ = ["get_context", "get_viewer", "require_admin", "require_approver"]


def get_context(request: Request) -> AdminContext:
    context: AdminContext = request.app.state.admin_context
    return context


def get_viewer(request: Request) -> Viewer:
    gated: Viewer | None = request.scope.get(VIEWER)  # authenticated by the AdminGate
    if gated is not None:
        return gated
    context = get_context(request)
    viewer = authenticate(
        request.headers.get("authorization"),
        request.headers.get("x-api-key"),
        context.admin_token_digest,
        context.keys,
        context.records.keys.find,
    )
    if viewer is None:
        raise unauthorized()
    return viewer


def require_admin(viewer: Annotated[Viewer, Depends(get_viewer)]) -> Viewer:
    if not viewer.is_admin:
        raise AdminError(
            403,
            "forbidden",
            "This needs the admin token or an API key with the 'admin' permission.",
        )
    return viewer


def require_approver(viewer: Annotated[Viewer, Depends(get_viewer)]) -> Viewer:
    if not viewer.is_approver:
        raise AdminError(
            403,
            "forbidden",
            "This needs the admin token or an API key with the 'approver' permission.",
        )
    return viewer
