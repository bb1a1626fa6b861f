"""The request handler: routing, auth, failure injection, counters, history.

Per-request work is kept small on purpose (the mock is the benchmarks' upstream): aiohttp's
low-level server without the router, no access log by default, orjson, parsed bodies and
generated texts cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from spendgate.mock_upstream import (
    anthropic_api,
    clouds,
    completions_api,
    count_tokens_api,
    embeddings_api,
    openai_api,
    responses_api,
)
from spendgate.mock_upstream.errors import Api, error_response
from spendgate.mock_upstream.options import (
    Controls,
    MockOptions,
    RequestControlError,
    parse_controls,
)
from spendgate.mock_upstream.reply import ChatCall, Reply, RequestError, plan_reply

__all__ = ["MockServer", "MockStats", "RecordedRequest", "fingerprint"]

MAX_BODY_BYTES = 64 * 1024 * 1024  # far above what tests send; the gateway enforces its own
_JSON = "application/json"
_JSON_HEADERS = {"Content-Type": _JSON}
_SSE = "text/event-stream; charset=utf-8"
_API_BY_PATH = {
    "/v1/chat/completions": Api.OPENAI,
    "/v1/messages": Api.ANTHROPIC,
    "/v1/responses": Api.RESPONSES,
    "/v1/completions": Api.OPENAI,
}
_LEGACY = "/v1/completions"
# Answers with no text to generate: request body → response body.
_ANSWERS: dict[str, tuple[Api, Callable[[dict[str, Any], int], bytes]]] = {
    "/v1/embeddings": (Api.OPENAI, embeddings_api.answer),
    "/v1/messages/count_tokens": (Api.ANTHROPIC, count_tokens_api.answer),
}
_CACHED_BODIES = 1024
_CACHED_BODY_BYTES = 16 * 1024
_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "api-key"})
_MALFORMED = object()


def fingerprint(credential: str) -> str:
    """What the mock remembers of a credential: a short SHA-256 prefix, never the value.

    Tests compare ``fingerprint(expected_key)`` with ``stats.credentials`` to check which
    key the gateway forwarded upstream."""
    return hashlib.sha256(credential.encode()).hexdigest()[:16]


@dataclass(slots=True, frozen=True)
class RecordedRequest:
    """One request as received, without its credential headers."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    """Parsed JSON body; ``None`` when absent or malformed."""
    credential: str | None
    """``fingerprint()`` of the credential, if any."""
    query: dict[str, str] = field(default_factory=dict)
    """The URL's query parameters (Azure's ``api-version``)."""


@dataclass(slots=True)
class MockStats:
    """Counters for test assertions. Plain ints and Counters: reading them from another
    thread (``MockUpstreamThread``) is safe under the GIL."""

    requests_by_path: Counter[str] = field(default_factory=Counter)
    responses_by_status: Counter[int] = field(default_factory=Counter)
    requests_by_model: Counter[str] = field(default_factory=Counter)
    credentials: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    disconnects: int = 0
    """Connections the mock dropped on purpose (``x-mock-disconnect-after-chunks``)."""
    client_disconnects: int = 0
    """Streams the client closed before their end."""
    history: deque[RecordedRequest] = field(default_factory=deque)

    @property
    def total(self) -> int:
        return sum(self.requests_by_path.values())

    def reset(self) -> None:
        self.requests_by_path.clear()
        self.responses_by_status.clear()
        self.requests_by_model.clear()
        self.credentials.clear()
        self.max_in_flight = self.in_flight
        self.disconnects = 0
        self.client_disconnects = 0
        self.history.clear()


def _credential(headers: CIMultiDictProxy[str]) -> str | None:
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    api_key = headers.get("x-api-key")
    return api_key if api_key else None


class MockServer:
    """Holds the options, the counters and the request handler of one mock upstream.

    It is served by aiohttp's low-level ``web.Server`` with a hand-written dispatch over four
    fixed paths: the ``Application`` / router layer costs about a quarter of the throughput.
    """

    def __init__(self, options: MockOptions) -> None:
        self.options = options
        self.stats = MockStats(history=deque(maxlen=options.history))
        self._rng = random.Random(options.seed)  # error injection is reproducible too
        self._prefix = secrets.token_hex(4)  # ids stay unique across restarts
        self._ids = itertools.count(1)
        # Benchmarks send the same few bodies again and again: parsing each once is enough.
        self._parsed: dict[tuple[str, int, bytes], tuple[dict[str, Any], ChatCall]] = {}
        self._responses = responses_api.ResponseStore()  # for previous_response_id

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path == "/health":
            # Unauthenticated and uncounted: for readiness polling by scripts.
            return web.Response(body=b'{"status":"ok"}', headers=_JSON_HEADERS)
        stats = self.stats
        stats.requests_by_path[path] += 1
        api = _API_BY_PATH.get(path)
        cloud = clouds.match(path) if api is None else None
        if cloud is not None:
            api = Api.OPENAI
        if api is not None and request.method == "POST":
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            try:
                response = await self._complete(request, api, cloud)
            finally:
                stats.in_flight -= 1
        elif path in _ANSWERS and request.method == "POST":
            response = await self._answer(request, *_ANSWERS[path])
        elif path == "/v1/models" and request.method == "GET":
            response = self._models(request)
        else:
            response = self._not_found(request, api)
        stats.responses_by_status[response.status] += 1
        return response

    def _request_id(self) -> str:
        return f"req_{self._prefix}{next(self._ids):012x}"

    async def _complete(
        self, request: web.BaseRequest, api: Api, cloud: clouds.CloudCall | None
    ) -> web.StreamResponse:
        options = self.options
        serial = f"{self._prefix}{next(self._ids):012x}"
        request_id = "req_" + serial
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error_response(api, 413, "request body too large", request_id)
        # A cloud's call is a chat call; its model is in its path: its body is no cache key.
        key = (request.path if cloud is None else _CHAT_PATH, options.seed, raw)
        parsed = self._parsed.get(key) if cloud is None else None
        body = _loads(raw) if parsed is None else parsed[0]
        if cloud is not None:
            credential = self._record(request, body, cloud.credential(request.headers))
            refusal = cloud.refusal(request, credential, options.api_key)
            if refusal is not None:
                return refusal
            body = cloud.body(body)
        else:
            credential = self._record(request, body, _credential(request.headers))
            if credential is None and options.require_auth:
                return error_response(api, 401, "missing credential: send an API key", request_id)
            if options.api_key is not None and credential != options.api_key:
                return error_response(api, 401, "invalid credential", request_id)
        try:
            controls = parse_controls(request.headers)
            call = self._parse(key, body, cache=cloud is None) if parsed is None else parsed[1]
        except RequestControlError as error:
            return error_response(api, 400, str(error), request_id)
        except RequestError as error:
            return error_response(api, 400, str(error), request_id, error.param)
        self.stats.requests_by_model[call.model] += 1
        latency_ms = options.latency_ms if controls.latency_ms is None else controls.latency_ms
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000)
        status = controls.status or options.forced_status
        if status is None and options.error_rate > 0 and self._rng.random() < options.error_rate:
            status = 500
        if status is not None:
            return error_response(api, status, f"mock upstream error {status}", request_id)
        if controls.disconnect_after is not None and not call.stream:
            # No response at all: the connection drops before the first byte.
            self.stats.disconnects += 1
            _drop(request)
            return web.Response(status=499)
        if call.stream:
            return await self._stream(request, api, body, call, controls, serial, request_id)
        reply = plan_reply(call, options, controls)
        if isinstance(call, responses_api.ResponsesCall):
            payload = responses_api.response_body(body, reply, call, serial, int(time.time()))
            self._remember(call, serial, reply)
            headers = {"Content-Type": _JSON, "x-request-id": request_id}
        elif request.path == _LEGACY:
            payload = completions_api.completion_body(
                reply, call.model, "cmpl-" + serial, int(time.time())
            )
            headers = {"Content-Type": _JSON, "x-request-id": request_id}
        elif api is Api.OPENAI:
            payload = openai_api.completion_body(
                reply, call.model, "chatcmpl-" + serial, int(time.time())
            )
            headers = {"Content-Type": _JSON, "x-request-id": request_id}
        else:
            payload = anthropic_api.message_body(reply, call.model, "msg_" + serial)
            headers = {"Content-Type": _JSON, "request-id": request_id}
        return web.Response(body=payload, headers=headers)

    async def _answer(
        self,
        request: web.BaseRequest,
        api: Api,
        render: Callable[[dict[str, Any], int], bytes],
    ) -> web.Response:
        """A request answered at once from its body (embeddings, token counts): with the
        credential check, the latency and the status injection of completions."""
        request_id = self._request_id()
        raw = await request.read()
        body = _loads(raw)
        if (
            self._record(request, body, _credential(request.headers)) is None
            and self.options.require_auth
        ):
            return error_response(api, 401, "missing credential: send an API key", request_id)
        try:
            controls = parse_controls(request.headers)
            if not isinstance(body, dict):
                raise RequestError("the request body is not a JSON object")
            payload = render(body, self.options.seed)
        except RequestControlError as error:
            return error_response(api, 400, str(error), request_id)
        except RequestError as error:
            return error_response(api, 400, str(error), request_id, error.param)
        self.stats.requests_by_model[str(body.get("model"))] += 1
        latency_ms = self.options.latency_ms if controls.latency_ms is None else controls.latency_ms
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000)
        status = controls.status or self.options.forced_status
        if status is not None:
            return error_response(api, status, f"mock upstream error {status}", request_id)
        return web.Response(
            body=payload, headers={"Content-Type": _JSON, "x-request-id": request_id}
        )

    def _parse(self, key: tuple[str, int, bytes], body: Any, *, cache: bool = True) -> ChatCall:
        path, seed, raw = key
        if not isinstance(body, dict):  # includes _MALFORMED
            raise RequestError("the request body is not a JSON object")
        if path == "/v1/responses":
            # Never cached: what previous_response_id names is looked up on each call.
            return responses_api.parse(body, seed, self._responses)
        call = _PARSERS[path](body, seed)
        if cache and len(raw) <= _CACHED_BODY_BYTES:
            if len(self._parsed) >= _CACHED_BODIES:
                self._parsed.clear()  # crude, but a benchmark's working set is tiny
            self._parsed[key] = (body, call)
        return call

    def _remember(self, call: responses_api.ResponsesCall, serial: str, reply: Reply) -> None:
        if call.store:
            self._responses.remember(f"resp_{serial}", responses_api.stored_tokens(reply))

    def _record(self, request: web.BaseRequest, body: Any, credential: str | None) -> str | None:
        """Counts the request credential's fingerprint and keeps the request in the history;
        returns the credential."""
        token = None if credential is None else fingerprint(credential)
        if token is not None:
            self.stats.credentials[token] += 1
        if self.options.history:
            headers = {
                name.lower(): value
                for name, value in request.headers.items()
                if name.lower() not in _CREDENTIAL_HEADERS
            }
            recorded = None if body is _MALFORMED else body
            self.stats.history.append(
                RecordedRequest(
                    request.method, request.path, headers, recorded, token, dict(request.query)
                )
            )
        return credential

    async def _stream(
        self,
        request: web.BaseRequest,
        api: Api,
        body: dict[str, Any],
        call: ChatCall,
        controls: Controls,
        serial: str,
        request_id: str,
    ) -> web.StreamResponse:
        options = self.options
        reply = plan_reply(call, options, controls)
        if isinstance(call, responses_api.ResponsesCall):
            created = int(time.time())
            chunks = options.stream_chunks
            events = responses_api.response_events(body, reply, call, serial, created, chunks)
            self._remember(call, serial, reply)
            id_header = "x-request-id"
        elif request.path == _LEGACY:
            events = completions_api.completion_events(
                reply, call, "cmpl-" + serial, int(time.time()), options.stream_chunks
            )
            id_header = "x-request-id"
        elif api is Api.OPENAI:
            events = openai_api.completion_events(
                reply, call, "chatcmpl-" + serial, int(time.time()), options.stream_chunks
            )
            id_header = "x-request-id"
        else:
            events = anthropic_api.message_events(
                reply, call.model, "msg_" + serial, options.stream_chunks
            )
            id_header = "request-id"
        response = web.StreamResponse(
            headers={
                "Content-Type": _SSE,
                "Cache-Control": "no-cache",
                id_header: request_id,
            }
        )
        delay = options.chunk_delay_ms / 1000
        drop = controls.disconnect_after
        cut = drop if drop is not None else controls.end_after
        sent = events if cut is None else events[:cut]
        try:
            await response.prepare(request)
            if not delay:
                # No pacing asked: one write instead of ~20 (a syscall and a chunk frame
                # each) keeps streaming nearly as cheap as a plain answer for benchmarks.
                await response.write(b"".join(sent))
            else:
                for index, event in enumerate(sent):
                    if index:
                        await asyncio.sleep(delay)
                    await response.write(event)
            if drop is not None and drop < len(events):
                self.stats.disconnects += 1
                _drop(request)
                return response
            await response.write_eof()
        except ConnectionResetError:
            # The client went away mid-stream: a gateway that stops reading, the end of a
            # benchmark run. Counted (tests can check a gateway cancels upstream), not logged.
            self.stats.client_disconnects += 1
        return response

    def _models(self, request: web.BaseRequest) -> web.Response:
        anthropic = "anthropic-version" in request.headers
        api = Api.ANTHROPIC if anthropic else Api.OPENAI
        credential = self._record(request, None, _credential(request.headers))
        if credential is None and self.options.require_auth:
            message = "missing credential: send an API key"
            return error_response(api, 401, message, self._request_id())
        models = self.options.models
        payload = anthropic_api.models_body(models) if anthropic else openai_api.models_body(models)
        return web.Response(body=payload, headers=_JSON_HEADERS)

    def _not_found(self, request: web.BaseRequest, api: Api | None) -> web.Response:
        if api is None:
            api = Api.ANTHROPIC if "anthropic-version" in request.headers else Api.OPENAI
        message = f"Invalid URL ({request.method} {request.path})"
        return error_response(api, 404, message, self._request_id(), route_missing=True)


_CHAT_PATH = "/v1/chat/completions"
_PARSERS: dict[str, Callable[[dict[str, Any], int], ChatCall]] = {
    "/v1/chat/completions": openai_api.parse,
    "/v1/messages": anthropic_api.parse,
    _LEGACY: completions_api.parse,
}


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _MALFORMED


def _drop(request: web.BaseRequest) -> None:
    """Close the connection now: what the client sees is a truncated response (or none).

    ``close()`` (not ``abort()``) so the events already written are flushed first; aiohttp
    then fails to finish the response, which it treats as a client disconnect, silently.
    """
    transport = request.transport
    if transport is not None:
        transport.close()
