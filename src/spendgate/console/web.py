"""What every console response shares: its URL prefix and its security headers."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["MAX_FORM_BYTES", "PREFIX", "FormTooLargeError", "read_form", "secured", "url"]

# The console's forms are a few short fields: anything larger is not from it.
MAX_FORM_BYTES = 64 * 1024

PREFIX = "/console"
# Scripts and styles from this origin only, no inline script, no request to another host.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "content-security-policy": _CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def url(path: str) -> str:
    return PREFIX + path


def secured(response: Response) -> Response:
    for name, value in _HEADERS.items():
        response.headers[name] = value
    response.headers.setdefault("cache-control", "no-store")
    return response


class FormTooLargeError(Exception):
    pass


async def read_form(request: Request) -> dict[str, str]:
    """The URL-encoded form of a POST (the only kind the console sends), at most
    ``MAX_FORM_BYTES``; a field given twice keeps its first value."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise FormTooLargeError
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLargeError
    fields: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(name, value)
    return fields
