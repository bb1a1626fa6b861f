"""Error responses in each provider's envelope, with the type names the real APIs use."""

from __future__ import annotations

from enum import Enum

import orjson
from aiohttp import web

__all__ = ["Api", "error_response"]


class Api(Enum):
    """Which provider API a request speaks (decides the error envelope)."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    RESPONSES = "responses"  # OpenAI's Responses API: OpenAI's envelope


_OPENAI_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_JSON = "application/json"


def error_response(
    api: Api,
    status: int,
    message: str,
    request_id: str,
    param: str | None = None,
    *,
    route_missing: bool = False,
) -> web.Response:
    """The provider's error body. A 404 means an unknown model unless ``route_missing``."""
    body: dict[str, object]
    if api is not Api.ANTHROPIC:
        kind, code = _OPENAI_TYPES.get(status, ("server_error", None))
        if route_missing:
            code = None
        body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        headers = {"Content-Type": _JSON, "x-request-id": request_id}
    else:
        fallback = "invalid_request_error" if status < 500 else "api_error"
        kind = _ANTHROPIC_TYPES.get(status, fallback)
        body = {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": request_id,
        }
        headers = {"Content-Type": _JSON, "request-id": request_id}
    if status == 429:
        headers["retry-after"] = "1"
    return web.Response(status=status, body=orjson.dumps(body), headers=headers)
