"""Minimal ASGI plumbing for the proxy path (no framework: it is the hot path)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

__all__ = [
    "BodyTooLargeError",
    "ClientDisconnectedError",
    "DisconnectWatch",
    "HeaderEncodingError",
    "Receive",
    "Scope",
    "Send",
    "header_map",
    "read_body",
    "respond",
    "start_response",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLargeError(Exception):
    pass


class ClientDisconnectedError(Exception):
    pass


class HeaderEncodingError(ValueError):
    def __init__(self, header: str) -> None:
        super().__init__(f"The value of the header {header} is not valid UTF-8.")
        self.header = header


def header_map(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name (ASGI gives them lower-cased already). Values are
    UTF-8 (ids such as ``x-spendgate-agent-id`` may be any text); raises
    ``HeaderEncodingError`` naming the first header that is not."""
    try:
        return {name.decode("latin-1"): value.decode() for name, value in scope["headers"]}
    except UnicodeDecodeError:
        for name, value in scope["headers"]:
            try:
                value.decode()
            except UnicodeDecodeError:
                raise HeaderEncodingError(name.decode("latin-1")) from None
        raise


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def start_response(
    send: Send, status: int, headers: Iterable[tuple[bytes, bytes]], content_type: bytes
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), *headers],
        }
    )


async def respond(
    send: Send,
    status: int,
    body: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
    content_type: bytes = b"application/json",
) -> None:
    await start_response(send, status, headers, content_type)
    await send({"type": "http.response.body", "body": body})


class DisconnectWatch:
    """Notices a client that goes away while a response streams (ASGI servers silently drop
    writes to a closed connection, so only ``receive`` tells)."""

    def __init__(self, receive: Receive) -> None:
        self.gone = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.gone.set()
                return

    def stop(self) -> None:
        self._task.cancel()
