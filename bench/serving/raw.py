"""The trivial endpoint on a direct httptools protocol over uvloop (no ASGI), for
``bench/serving_bench.py``: what a hand-written server for the proxy routes could reach.
It does the work such a server could not skip: headers collected and lower-cased into a dict,
a request object and a task per request (the handler awaits the upstream), the body
accumulated, the response head serialised from a header list, keep-alive honoured."""

from __future__ import annotations

import asyncio
import sys

import httptools
import uvloop
from trivial_apps import BODY, HEADERS


class Request:
    __slots__ = ("body", "headers", "method", "path")

    def __init__(self, method: bytes, path: bytes, headers: dict[str, str]) -> None:
        self.method = method.decode()
        self.path = path.decode()
        self.headers = headers
        self.body: list[bytes] = []


class Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.request: Request | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        headers = {name.decode("latin-1"): value.decode() for name, value in self.headers}
        parsed = httptools.parse_url(self.url)
        self.request = Request(self.parser.get_method(), parsed.path, headers)

    def on_body(self, body: bytes) -> None:
        assert self.request is not None
        self.request.body.append(body)

    def on_message_complete(self) -> None:
        assert self.request is not None
        self.loop.create_task(self.answer(self.request, self.parser.should_keep_alive()))

    async def answer(self, request: Request, keep_alive: bool) -> None:
        assert self.transport is not None
        b"".join(request.body)
        request.headers.get("authorization")
        self.respond(200, HEADERS, BODY, keep_alive)

    def respond(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, keep_alive: bool
    ) -> None:
        assert self.transport is not None
        head = [b"HTTP/1.1 %d OK\r\n" % status]
        head.extend(b"%s: %s\r\n" % pair for pair in headers)
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        if not keep_alive:
            self.transport.close()


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Protocol, "127.0.0.1", port)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
