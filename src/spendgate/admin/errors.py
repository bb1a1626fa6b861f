"""The admin API's errors, in the proxy's OpenAI envelope
``{"error": {"message", "type", "code", "param"}}``.

Routers raise ``AdminError``; the app turns it, FastAPI's ``HTTPException`` and request
validation errors into the envelope (see ``app.install_error_handlers``). Nothing reaches the
client as a bare 500: an unexpected exception becomes a 500 envelope with no internals.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = [
    "AdminError",
    "ErrorBody",
    "ErrorEnvelope",
    "config_managed",
    "database_unavailable",
    "envelope",
    "error_type",
    "forbidden",
    "not_found",
    "unauthorized",
]

# The envelope's ``type`` by status, as OpenAI names them (clients already switch on these).
_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "api_error",
    503: "api_error",
}


class AdminError(Exception):
    """An error answer: HTTP ``status``, stable snake_case ``code``, a sentence for people,
    and the offending field path as ``param`` (``body.hard_limit``, ``query.since``)."""

    def __init__(self, status: int, code: str, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param


class ErrorBody(BaseModel):
    message: str
    type: str
    code: str | None
    param: str | None = None


class ErrorEnvelope(BaseModel):
    """Every error answer of the admin API."""

    error: ErrorBody


def error_type(status: int) -> str:
    return _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def envelope(status: int, code: str | None, message: str, param: str | None = None) -> Any:
    return {"error": {"message": message, "type": error_type(status), "code": code, "param": param}}


def database_unavailable(busy: bool) -> AdminError:
    """The journal could not answer in time: a 503 the client may retry, never a 500."""
    if busy:
        return AdminError(
            503,
            "database_busy",
            "The database is busy (another transaction holds its lock); retry in a moment.",
        )
    return AdminError(
        503, "database_unavailable", "The database is unavailable; see the gateway's log."
    )


def not_found(what: str, ident: str) -> AdminError:
    return AdminError(404, "not_found", f"No {what} with id {ident!r}.")


def config_managed(what: str, ident: str, source: str) -> AdminError:
    return AdminError(
        409,
        "config_managed",
        f"The {what} {ident!r} is managed by the config file {source}: edit that YAML file "
        "and restart the gateway to change it.",
    )


def unauthorized() -> AdminError:
    return AdminError(
        401,
        "invalid_api_key",
        "Missing or invalid credential. Send the admin token or an API key as "
        "'Authorization: Bearer <token>'.",
    )


def forbidden(message: str, param: str | None = None) -> AdminError:
    return AdminError(403, "forbidden", message, param=param)
