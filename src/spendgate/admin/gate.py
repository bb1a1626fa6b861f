"""The admin API's front door, in plain ASGI before FastAPI sees a request.

The credential is checked from the headers before a byte of the body is read: a stranger's
60 MB upload is answered 401 at once, and the connection closed so the server does not drain
it. An authenticated body is read up to ``max_body`` (413 beyond, never buffering more) and
its JSON shape bounded like the proxy's (``gateway.body``), then handed on to the app.
The OpenAPI document, its docs page and the page's files stay public (``_is_public``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import orjson

from spendgate.admin.auth import Viewer, authenticate
from spendgate.admin.context import AdminContext
from spendgate.admin.errors import AdminError, envelope, unauthorized
from spendgate.gateway.asgi import (
    BodyTooLargeError,
    ClientDisconnectedError,
    HeaderEncodingError,
    Message,
    Receive,
    Scope,
    Send,
    header_map,
    read_body,
    respond,
)
from spendgate.gateway.body import JsonShapeError, check_json_shape

__all__ = ["VIEWER", "AdminGate"]

VIEWER: Final = "spendgate.viewer"  # scope key: the Viewer the gate authenticated
_PUBLIC: Final = frozenset({"/api/v1/openapi.json", "/api/v1/docs"})
_PUBLIC_FILES: Final = "/api/v1/docs/static/"
_CLOSE: Final = [(b"connection", b"close")]


class AdminGate:
    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        context: AdminContext,
        max_body: int,
    ) -> None:
        self.app = app
        self.context = context
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            headers = header_map(scope)
        except HeaderEncodingError as error:
            param = f"header.{error.header}"
            await _refuse(send, AdminError(400, "invalid_request", str(error), param=param))
            return
        if not _is_public(scope["path"]):
            viewer = self._viewer(headers)
            if viewer is None:
                await _refuse(send, unauthorized(), _CLOSE)
                return
            scope[VIEWER] = viewer
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            await _refuse(send, self._too_large(), _CLOSE)
            return
        try:
            body = await read_body(receive, self.max_body)
        except BodyTooLargeError:
            await _refuse(send, self._too_large(), _CLOSE)
            return
        except ClientDisconnectedError:
            return
        try:
            check_json_shape(body)
        except JsonShapeError as error:
            await _refuse(send, AdminError(400, "invalid_request", str(error), param="body"))
            return
        await self.app(scope, _replay(body, receive), send)

    def _viewer(self, headers: dict[str, str]) -> Viewer | None:
        return authenticate(
            headers.get("authorization"),
            headers.get("x-api-key"),
            self.context.admin_token_digest,
            self.context.keys,
            self.context.records.keys.find,
        )

    def _too_large(self) -> AdminError:
        return AdminError(
            413,
            "body_too_large",
            f"The request body is larger than the admin API's limit of {self.max_body} bytes.",
        )


def _is_public(path: str) -> bool:
    """Whether ``path`` is answered without a credential."""
    return path in _PUBLIC or path.startswith(_PUBLIC_FILES)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body, already read, as the app's first message; then the connection's own
    messages (a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def _refuse(
    send: Send, error: AdminError, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = orjson.dumps(envelope(error.status, error.code, error.message, error.param))
    await respond(send, error.status, body, headers or [])
