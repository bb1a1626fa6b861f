"""The admin API's FastAPI app: every router under ``/api/v1``, one error envelope, OpenAPI at
``/api/v1/openapi.json`` (interactive docs at ``/api/v1/docs``, see ``docs``).

Every operation declares the credential it needs (``bearer``, or the same credential as
``x-api-key``), so Swagger UI's Authorize button sends it. The ``AdminGate`` checks it before
the app sees a request; the declarations only describe that check.

The gateway builds it lazily, on the first ``/api/`` request, and hands it every such request
with its path unchanged, so the app carries the ``/api/v1`` prefix itself.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from spendgate.admin import (
    alerts,
    approvals,
    budgets,
    decisions,
    docs,
    explain,
    keys,
    models,
    pricing,
    rate_limits,
    usage,
)
from spendgate.admin.context import AdminContext
from spendgate.admin.errors import AdminError, ErrorEnvelope, database_unavailable, envelope
from spendgate.store.db import is_busy
from spendgate.store.writer import safe_error

__all__ = ["PREFIX", "create_admin_app"]

PREFIX = "/api/v1"

log = logging.getLogger("spendgate.admin")

# Documented on every operation, so the OpenAPI document describes every answer a client can
# get (schemathesis checks responses against it).
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in (
        (400, "Bad request"),
        (401, "Missing or invalid credential"),
        (403, "Not allowed for this credential or scope"),
        (404, "Unknown id"),
        (409, "Conflict (e.g. a config-managed record)"),
        (422, "Invalid parameters or body; `param` names the field"),
        (503, "The database is busy or unavailable: retry"),
    )
}

# Either credential will do (two security requirements: one or the other). They never refuse
# a request themselves (``auto_error=False``): the gate has already authenticated it.
_CREDENTIALS = [
    Security(
        HTTPBearer(
            scheme_name="bearer",
            auto_error=False,
            description="The admin token (`SPENDGATE_ADMIN_TOKEN`) or an API key: "
            "`Authorization: Bearer <credential>`. A key without the `admin` permission reads "
            "only its own project, principal or key.",
        )
    ),
    Security(
        APIKeyHeader(
            name="x-api-key",
            scheme_name="apiKey",
            auto_error=False,
            description="The same credential in the `x-api-key` header.",
        )
    ),
]

# HTTPException codes by status, for errors raised by FastAPI/Starlette themselves.
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "invalid_api_key"}


def create_admin_app(context: AdminContext) -> FastAPI:
    app = FastAPI(
        title="spendgate admin API",
        version="1",
        summary="Budgets, pricing, keys, usage, routing decisions, explain and models.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,  # our own page (``docs``): no CDN, no inline script
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.admin_context = context
    routers = (budgets, rate_limits, pricing, keys, usage, models, explain, decisions, approvals)
    for module in (*routers, alerts):
        app.include_router(
            module.router, prefix=PREFIX, responses=_ERRORS, dependencies=_CREDENTIALS
        )
    app.include_router(docs.router, prefix=PREFIX)
    install_error_handlers(app)
    return app


def validation_param(location: tuple[int | str, ...] | list[int | str]) -> str:
    """``("body", "hard_limit")`` → ``body.hard_limit``; list indexes as ``[i]``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def install_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"error": {"message", "type", "code", "param"}}``."""

    async def admin_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AdminError)
        return JSONResponse(envelope(exc.status, exc.code, exc.message, exc.param), exc.status)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = "Not found: no such admin API endpoint (see /api/v1/openapi.json)."
        return JSONResponse(
            envelope(exc.status_code, code, message), exc.status_code, headers=exc.headers
        )

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = exc.errors()
        first = problems[0] if problems else {}
        param = validation_param(tuple(first.get("loc", ()))) or None
        reason = str(first.get("msg", "invalid value"))
        message = f"{param}: {reason}" if param else reason
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
        return JSONResponse(envelope(422, "invalid_request", message, param), 422)

    async def database_error(_request: Request, exc: Exception) -> JSONResponse:
        busy = is_busy(exc)
        log.warning("admin API: database %s: %s", "busy" if busy else "error", safe_error(exc))
        error = database_unavailable(busy)
        return JSONResponse(
            envelope(error.status, error.code, error.message), error.status, {"retry-after": "1"}
        )

    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # A bug must not leak internals (paths, SQL, secrets) to the client: log it here.
        log.exception("admin API error", exc_info=exc)
        return JSONResponse(
            envelope(500, "internal_error", "Internal error; see the gateway's log."), 500
        )

    app.add_exception_handler(AdminError, admin_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(OperationalError, database_error)
    app.add_exception_handler(PoolTimeoutError, database_error)
    app.add_exception_handler(Exception, unexpected)
