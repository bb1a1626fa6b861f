"""An ASGI app on a minimal httptools protocol over uvloop, for ``bench/serving_bench.py``
(the trivial app) and ``bench/serving_gateway_bench.py`` (the gateway, from its worker
factory, lifespan started): how much of the direct protocol's saving survives when the app
keeps ASGI's scope, ``receive`` and ``send`` (and only uvicorn's implementation goes).
Non-streaming requests only: the body is read whole, no disconnect is ever reported.

    python raw_asgi.py PORT [module:factory]
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httptools
import uvloop
from trivial_apps import asgi

_REASONS = {200: b"OK"}
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class Protocol(asyncio.Protocol):
    def __init__(self, app: App) -> None:
        self.app = app
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        parsed = httptools.parse_url(self.url)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": self.parser.get_method().decode(),
            "scheme": "http",
            "path": parsed.path.decode(),
            "raw_path": parsed.path,
            "query_string": parsed.query or b"",
            "root_path": "",
            "headers": self.headers,
        }
        self.loop.create_task(self.run(scope, b"".join(self.body)))

    async def run(self, scope: dict[str, Any], body: bytes) -> None:
        transport = self.transport
        assert transport is not None
        head: list[bytes] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                head.append(b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"")))
                head.extend(b"%s: %s\r\n" % pair for pair in message["headers"])
            else:
                data = message.get("body", b"")
                head.append(b"content-length: %d\r\n\r\n" % len(data))
                transport.write(b"".join(head) + data)

        await self.app(scope, receive, send)


async def start_lifespan(app: App) -> None:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()
    await inbox.put({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    asyncio.get_running_loop().create_task(app({"type": "lifespan"}, inbox.get, send))
    await started.wait()


async def main(port: int, factory: str | None) -> None:
    app: App = asgi
    if factory is not None:
        module, name = factory.split(":")
        app = getattr(importlib.import_module(module), name)()
        await start_lifespan(app)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Protocol(app), "127.0.0.1", port)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
