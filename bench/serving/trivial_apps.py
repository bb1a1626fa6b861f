"""The same trivial endpoint for each server measured by ``bench/serving_bench.py``: read the
request body, answer a small JSON body with the gateway's nine response headers. ``asgi`` for
uvicorn and Granian's ASGI interface, ``rsgi`` for Granian's RSGI interface; ``raw.py`` serves
it with httptools directly."""

from __future__ import annotations

from typing import Any

BODY = b'{"id":"chatcmpl-1","object":"chat.completion","choices":[]}'
# What a proxied answer carries: content-type and the x-spendgate-* headers.
HEADERS = [
    (b"content-type", b"application/json"),
    (b"x-spendgate-decision-id", b"01JF3Q8Z9X4V6T2R0M5K7H1C3B"),
    (b"x-spendgate-model", b"gpt-4o-mini"),
    (b"x-spendgate-routing-action", b"pass_through"),
    (b"x-spendgate-recommended-model", b"gpt-4o-mini"),
    (b"x-spendgate-estimated-cost-usd", b"0.000012"),
    (b"x-spendgate-budget-status", b"ok"),
    (b"x-spendgate-provider", b"openai"),
    (b"x-spendgate-deployment", b"openai-main"),
]
_RSGI_HEADERS = [(name.decode(), value.decode()) for name, value in HEADERS]


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


async def rsgi(scope: Any, protocol: Any) -> None:
    await protocol()
    protocol.response_bytes(200, _RSGI_HEADERS, BODY)
