"""The floor: the least a Python proxy on spendgate's stack can cost, as a column of
``bench/gateway_bench.py``. The same server (uvicorn, httptools, uvloop, spendgate's serving
settings) and the same upstream client (spendgate's pooled aiohttp session) relay each chat
completion to the bench's nginx and its answer back, byte for byte, with nothing else: no
key, no policy, no price, no journal. What spendgate adds beyond this column is the cost of
its governance and bookkeeping; what this column adds beyond nginx is the stack's own.

    taskset -c 0 .venv/bin/python bench/floor_proxy.py PORT UPSTREAM_PORT
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from spendgate.gateway.supervisor import SERVING
from spendgate.providers.session import SessionPool

_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def floor_app(upstream: str) -> Any:
    pool = SessionPool()
    json_url, sse_url = f"{upstream}/v1/chat/completions", f"{upstream}/sse/v1/chat/completions"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/healthz":
            await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        headers = {"content-type": "application/json", "authorization": authorization.decode()}
        stream = b'"stream":true' in body or b'"stream": true' in body
        async with pool.session().post(
            sse_url if stream else json_url, data=body, headers=headers
        ) as response:
            if not stream:
                answer = await response.read()
                start = {"type": "http.response.start", "status": response.status}
                await send({**start, "headers": _HEADERS})
                await send({"type": "http.response.body", "body": answer})
                return
            start = {"type": "http.response.start", "status": response.status}
            await send({**start, "headers": _SSE_HEADERS})
            while chunk := await response.content.readany():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    return app


def main() -> None:
    port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
    app = floor_app(f"http://127.0.0.1:{upstream_port}")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", **SERVING)


if __name__ == "__main__":
    main()
