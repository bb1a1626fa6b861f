"""Apps the gateway serves under a path prefix (the admin API, the console), each built on its
first request: a gateway nobody administers never imports them, and the proxy path never pays
for them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from spendgate.gateway.asgi import Receive, Scope, Send

__all__ = ["App", "Mount"]

App = Callable[[Scope, Receive, Send], Awaitable[None]]


class Mount:
    def __init__(self, prefix: str, build: Callable[[], App]) -> None:
        self.prefix = prefix.rstrip("/")
        self._build = build
        self._app: App | None = None

    @property
    def built(self) -> bool:
        return self._app is not None

    def matches(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            self._app = self._build()
        await self._app(scope, receive, send)
