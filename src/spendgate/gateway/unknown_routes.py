"""The answer to a proxy route that does not exist (404) or a known one called with the wrong
method (405): in the error envelope of the API family the client speaks, so its SDK raises
its own ``NotFoundError`` with a message naming the routes spendgate does serve.

Anthropic's family: a path under ``/v1/messages`` or a request carrying ``anthropic-version``
(every Anthropic SDK sends it); OpenAI's otherwise. The admin API (``/api``) and the console
answer their own 404s.
"""

from __future__ import annotations

from collections.abc import Iterable

from spendgate.domain.requests import Protocol
from spendgate.gateway.asgi import Scope, Send, respond
from spendgate.gateway.errors import GatewayError

__all__ = ["family", "route_missing"]


def family(scope: Scope) -> Protocol:
    """The API family a request speaks, from its path and headers alone."""
    if scope["path"].startswith("/v1/messages"):
        return Protocol.ANTHROPIC
    if any(name == b"anthropic-version" for name, _ in scope["headers"]):
        return Protocol.ANTHROPIC
    return Protocol.OPENAI


async def route_missing(
    scope: Scope, send: Send, routes: Iterable[tuple[str, str]], allow: str | None = None
) -> None:
    """404 for an unknown path; 405 (with ``allow``) for a known path called with another
    method. ``routes``: the proxy's (method, path) pairs, named in the message."""
    served = ", ".join(f"{method} {path}" for method, path in routes)
    asked = f"{scope['method']} {scope['path']}"
    if allow is None:
        error = GatewayError(
            404,
            "unknown_route",
            f"spendgate has no route {asked}. Its proxy routes are: {served}.",
        )
    else:
        error = GatewayError(
            405,
            "method_not_allowed",
            f"{scope['path']} answers {allow} only, not {scope['method']}. spendgate's proxy "
            f"routes are: {served}.",
            headers=(("allow", allow),),
        )
    await respond(send, error.status, error.body(family(scope)), error.response_headers())
