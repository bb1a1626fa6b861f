"""Running the mock: in the current event loop, or in a background thread for sync tests."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from dataclasses import replace
from types import TracebackType
from typing import Self, Unpack

from aiohttp import log as aiohttp_log
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from spendgate.mock_upstream.options import MockOptions, MockOverrides
from spendgate.mock_upstream.server import MAX_BODY_BYTES, MockServer, MockStats

__all__ = ["MockUpstream", "MockUpstreamThread"]

_STARTUP_TIMEOUT_S = 10.0


def _options(base: MockOptions | None, overrides: MockOverrides) -> MockOptions:
    # replace() builds a new instance, so __post_init__ validates the overridden values too.
    return replace(base or MockOptions(), **overrides)


class MockUpstream:
    """The mock upstream served from the running event loop.

    ``async with MockUpstream(port=0, latency_ms=0) as mock:`` then point an OpenAI client at
    ``mock.openai_base_url`` (``…/v1``) or an Anthropic client at ``mock.base_url``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        options: MockOptions | None = None,
        access_log: bool = False,
        **overrides: Unpack[MockOverrides],
    ) -> None:
        self.host = host
        self.port = port
        self.server = MockServer(_options(options, overrides))
        self._access_log = access_log
        self._runner: web.ServerRunner | None = None

    @property
    def options(self) -> MockOptions:
        """Live options: changing a field changes how the next requests are answered."""
        return self.server.options

    @property
    def stats(self) -> MockStats:
        return self.server.stats

    @property
    def requests_by_path(self) -> Counter[str]:
        return self.server.stats.requests_by_path

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    async def start(self) -> None:
        family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Binding ourselves is how port=0 gets its ephemeral port known before serving.
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        loop = asyncio.get_running_loop()

        def make_request(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: RequestHandler,
            writer: AbstractStreamWriter,
            task: asyncio.Task[None],
        ) -> web.BaseRequest:
            # The low-level server's own factory caps bodies at 1 MiB; tests send more.
            return web.BaseRequest(
                message, payload, protocol, writer, task, loop, client_max_size=MAX_BODY_BYTES
            )

        # The access log is off by default: it costs throughput, and it never prints headers
        # anyway (so no credential) when enabled.
        server = web.Server(
            self.server.handle,
            request_factory=make_request,
            access_log=aiohttp_log.access_logger if self._access_log else None,
        )
        # shutdown_timeout: tests stop mid-stream; don't wait the default 60 s for handlers.
        runner = web.ServerRunner(server, shutdown_timeout=1.0)
        await runner.setup()
        await web.SockSite(runner, sock, backlog=1024).start()
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


class MockUpstreamThread:
    """The mock upstream in a background thread with its own event loop, for synchronous
    tests and fixtures: ``with MockUpstreamThread(latency_ms=0) as mock: ...``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        options: MockOptions | None = None,
        **overrides: Unpack[MockOverrides],
    ) -> None:
        self._mock = MockUpstream(host=host, port=port, options=options, **overrides)
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def options(self) -> MockOptions:
        return self._mock.options

    @property
    def stats(self) -> MockStats:
        return self._mock.stats

    @property
    def requests_by_path(self) -> Counter[str]:
        return self._mock.requests_by_path

    @property
    def port(self) -> int:
        return self._mock.port

    @property
    def base_url(self) -> str:
        return self._mock.base_url

    @property
    def openai_base_url(self) -> str:
        return self._mock.openai_base_url

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="mock-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(_STARTUP_TIMEOUT_S):
            raise TimeoutError("the mock upstream did not start")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self) -> None:
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is not None and stopping is not None:
            loop.call_soon_threadsafe(stopping.set)
        if thread is not None:
            thread.join(_STARTUP_TIMEOUT_S)
        self._loop = self._stopping = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        stopping = asyncio.Event()
        try:
            await self._mock.start()
        except BaseException as error:  # reported to the thread that called start()
            self._error = error
            self._ready.set()
            return
        self._loop, self._stopping = asyncio.get_running_loop(), stopping
        self._ready.set()
        try:
            await stopping.wait()
        finally:
            await self._mock.stop()
