"""Upstream clients, errors, failover and health over real HTTP on loopback.

A tiny aiohttp server in this file plays the providers. Its behaviour is picked by the
first path segment of the provider's base URL (``/ok``, ``/status/500``, ``/slow``, …), so
several "providers" can share one server.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from spendgate.domain.health import CircuitState, HealthBoard, HealthConfig, Outcome
from spendgate.domain.models import Provider, ProviderKind
from spendgate.domain.pricing import Usage
from spendgate.domain.requests import Protocol
from spendgate.domain.routing import HealthState
from spendgate.domain.translate import (
    anthropic_response_to_openai,
    encode_sse,
    openai_request_to_anthropic,
)
from spendgate.providers import (
    AnthropicUpstream,
    Attempt,
    CircuitOpenError,
    Failover,
    FailoverError,
    MockUpstream,
    OpenAIUpstream,
    SessionPool,
    Target,
    UpstreamBusyError,
    UpstreamCall,
    UpstreamClientError,
    UpstreamConnectError,
    UpstreamConnectTimeoutError,
    UpstreamDisconnectedError,
    UpstreamError,
    UpstreamNotConfiguredError,
    UpstreamProtocolError,
    UpstreamRateLimitedError,
    UpstreamRegistry,
    UpstreamServerError,
    UpstreamTimeoutError,
    redact,
)
from spendgate.providers.errors import error_from_exception, error_from_response

pytestmark = pytest.mark.anyio

OPENAI_KEY = "sk-openai-test-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-api03-test-0123456789abcdef"
ENV = {"OPENAI_KEY": OPENAI_KEY, "ANTHROPIC_KEY": ANTHROPIC_KEY, "MOCK_KEY": "mock-key-123"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- the fake providers ---------------------------------------------------------------------

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
              "prompt_tokens_details": {"cached_tokens": 4}},
}  # fmt: skip
MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-x",
    "content": [{"type": "text", "text": "Hi!"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 8, "output_tokens": 3, "cache_read_input_tokens": 4,
              "cache_creation_input_tokens": 0},
}  # fmt: skip
OPENAI_STREAM = [
    encode_sse({"id": "c", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
    encode_sse(
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}
    ),
    encode_sse({"id": "c", "choices": [], "usage": COMPLETION["usage"]}),
    b"data: [DONE]\n\n",
]
ANTHROPIC_STREAM = [
    encode_sse(
        {
            "type": "message_start",
            "message": {
                **MESSAGE,
                "content": [],
                "usage": {"input_tokens": 8, "output_tokens": 1, "cache_read_input_tokens": 4},
            },
        },
        "message_start",
    ),
    encode_sse(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        "content_block_start",
    ),
    encode_sse(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi!"}},
        "content_block_delta",
    ),
    encode_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
    encode_sse(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 3},
        },
        "message_delta",
    ),
    encode_sse({"type": "message_stop"}, "message_stop"),
]


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    peer_port: int


@dataclass
class FakeProviders:
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=dict)
    flaky_failures: int = 0  # /flaky fails this many times, then answers

    def count(self, behaviour: str) -> int:
        return self.hits.get(behaviour, 0)


async def _stream(request: web.Request, chunks: list[bytes], *, break_after: int | None = None
                  ) -> web.StreamResponse:  # fmt: skip
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    for index, chunk in enumerate(chunks):
        if break_after is not None and index == break_after:
            assert request.transport is not None
            request.transport.abort()  # the upstream dies mid-stream
            return response
        await response.write(chunk)
        await asyncio.sleep(0.005)  # separate TCP writes: real chunking
    await response.write_eof()
    return response


def make_app(state: FakeProviders) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        behaviour = request.match_info["behaviour"]
        arg = request.match_info.get("arg", "")
        api = "anthropic" if request.path.endswith("/messages") else "openai"
        body = orjson.loads(await request.read())
        assert request.transport is not None
        peer = request.transport.get_extra_info("peername")
        state.seen.append(Seen(request.path, dict(request.headers), body, peer[1]))
        state.hits[behaviour] = state.hits.get(behaviour, 0) + 1
        stream = body.get("stream") is True
        if behaviour == "status":
            code = int(arg)
            message = (
                f"Incorrect API key provided: {request.headers.get('x-api-key') or OPENAI_KEY}."
                " Authorization: Bearer abcdefghijklmnop123 req_abc123"
            )
            return web.json_response(
                {"error": {"message": message, "type": "test_error"}},
                status=code,
                headers={"retry-after": "2"} if code == 429 else None,
            )
        if behaviour == "flaky" and state.flaky_failures > 0:
            state.flaky_failures -= 1
            return web.json_response({"error": {"message": "down"}}, status=503)
        if behaviour == "slow":
            await asyncio.sleep(float(arg or 2))
        if behaviour == "notjson":
            return web.Response(text="<html>gateway</html>")
        chunks = ANTHROPIC_STREAM if api == "anthropic" else OPENAI_STREAM
        if behaviour == "stall":
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)  # headers, then no byte for a long time
            await asyncio.sleep(5)
            return response
        if behaviour == "breaks":
            return await _stream(request, chunks, break_after=1)
        if stream:
            return await _stream(request, chunks)
        return web.json_response(MESSAGE if api == "anthropic" else COMPLETION)

    app = web.Application()
    for suffix in ("/v1/chat/completions", "/v1/messages"):
        app.router.add_post("/{behaviour}" + suffix, handle)
        app.router.add_post("/{behaviour}/{arg}" + suffix, handle)
    return app


@pytest.fixture
async def fake() -> AsyncIterator[FakeProviders]:
    state = FakeProviders()
    runner = web.AppRunner(make_app(state), shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def openai(fake: FakeProviders, behaviour: str = "ok", pid: str = "oa", **kw: Any) -> Provider:
    return Provider(pid, ProviderKind.OPENAI, f"{fake.url}/{behaviour}/v1", "OPENAI_KEY", **kw)


def anthropic(fake: FakeProviders, behaviour: str = "ok", pid: str = "an", **kw: Any) -> Provider:
    return Provider(pid, ProviderKind.ANTHROPIC, f"{fake.url}/{behaviour}", "ANTHROPIC_KEY", **kw)


def chat_call(stream: bool = False, **kw: Any) -> UpstreamCall:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return UpstreamCall(Protocol.OPENAI, body, **kw)


def messages_call(stream: bool = False) -> UpstreamCall:
    body = {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body["stream"] = True
    return UpstreamCall(Protocol.ANTHROPIC, body)


# -- clients: requests, headers, pooling ----------------------------------------------------


async def test_openai_send_headers_usage_and_one_pooled_session(fake: FakeProviders) -> None:
    async with UpstreamRegistry([openai(fake)], env=ENV) as registry:
        upstream = registry["oa"]
        assert isinstance(upstream, OpenAIUpstream)
        responses = [await upstream.send(chat_call()) for _ in range(5)]
        responses += await asyncio.gather(*(upstream.send(chat_call()) for _ in range(5)))
        assert registry.pool.sessions_created == 1
    first = responses[0]
    assert first.status == 200
    assert first.body == COMPLETION
    assert orjson.loads(first.raw) == COMPLETION
    assert first.usage == Usage(12, 3, 4)
    assert first.latency_s > 0
    seen = fake.seen[0]
    assert seen.path == "/ok/v1/chat/completions"
    assert seen.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert "x-api-key" not in {k.lower() for k in seen.headers}
    assert seen.headers["Content-Type"] == "application/json"
    # Keep-alive: the five sequential calls reused one connection.
    assert len({s.peer_port for s in fake.seen[:5]}) == 1


async def test_anthropic_send_headers_and_usage(fake: FakeProviders) -> None:
    async with UpstreamRegistry([anthropic(fake)], env=ENV) as registry:
        upstream = registry["an"]
        assert isinstance(upstream, AnthropicUpstream)
        response = await upstream.send(messages_call())
    assert response.usage == Usage(12, 3, 4)  # 8 uncached + 4 cache reads
    seen = fake.seen[0]
    assert seen.path == "/ok/v1/messages"
    assert seen.headers["x-api-key"] == ANTHROPIC_KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in {k.lower() for k in seen.headers}


async def test_mock_speaks_both_protocols_and_callers_cannot_override_credentials(
    fake: FakeProviders,
) -> None:
    mock = Provider("mock", ProviderKind.MOCK, f"{fake.url}/ok/v1", "MOCK_KEY")
    keyless = Provider("open", ProviderKind.MOCK, f"{fake.url}/ok/v1")
    async with UpstreamRegistry([mock, keyless], env=ENV) as registry:
        upstream = registry["mock"]
        assert isinstance(upstream, MockUpstream)
        spoofed = UpstreamCall(
            Protocol.OPENAI,
            chat_call().body,
            headers={"Authorization": "Bearer stolen", "x-trace": "t1"},
        )
        await upstream.send(spoofed)
        await upstream.send(messages_call())
        await registry["open"].send(chat_call())
    assert fake.seen[0].headers["Authorization"] == "Bearer mock-key-123"
    assert fake.seen[0].headers["x-trace"] == "t1"
    assert fake.seen[1].path == "/ok/v1/messages"
    # Without a configured key the mock kind sends a fixed placeholder, never a secret.
    assert fake.seen[2].headers["Authorization"] == "Bearer spendgate-mock"


async def test_raw_body_is_sent_byte_for_byte(fake: FakeProviders) -> None:
    raw = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"x_extra":  1}'
    async with UpstreamRegistry([openai(fake)], env=ENV) as registry:
        await registry["oa"].send(UpstreamCall(Protocol.OPENAI, raw=raw))
    assert fake.seen[0].body["x_extra"] == 1


async def test_a_provider_refuses_the_other_protocol(fake: FakeProviders) -> None:
    async with UpstreamRegistry([openai(fake)], env=ENV) as registry:
        with pytest.raises(ValueError, match="translate the request first"):
            await registry["oa"].send(messages_call())


# -- streaming ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_stream_passes_bytes_through_and_measures_first_byte(
    fake: FakeProviders, kind: str
) -> None:
    provider = openai(fake) if kind == "openai" else anthropic(fake)
    call = chat_call(stream=True) if kind == "openai" else messages_call(stream=True)
    expected = b"".join(OPENAI_STREAM if kind == "openai" else ANTHROPIC_STREAM)
    async with UpstreamRegistry([provider], env=ENV) as registry:
        upstream = registry[provider.id]
        async with await upstream.stream(call) as stream:
            assert stream.status == 200
            assert stream.ttfb_s > 0
            chunks = [chunk async for chunk in stream]
        assert b"".join(chunks) == expected
        assert len(chunks) > 1  # arrived, and was handed on, in pieces
        assert stream.complete
        assert stream.closed
        assert stream.usage == Usage(12, 3, 4)
        assert stream.observer.output_text in ("Hello", "Hi!")
        assert stream.bytes_received == len(expected)
        assert stream.elapsed_s >= stream.ttfb_s


async def test_stream_closed_early_frees_the_concurrency_slot(fake: FakeProviders) -> None:
    async with UpstreamRegistry([openai(fake, max_concurrency=1)], env=ENV) as registry:
        upstream = registry["oa"]
        for _ in range(3):  # would deadlock if the slot leaked
            stream = await upstream.stream(chat_call(stream=True))
            await stream.__anext__()
            await stream.aclose()
        response = await upstream.send(chat_call(timeout_s=1.0))
        assert response.status == 200


async def test_stream_errors_before_and_after_the_first_byte(fake: FakeProviders) -> None:
    providers = [
        openai(fake, "stall", "stall", timeout_s=0.3),
        openai(fake, "breaks", "breaks"),
        openai(fake, "status/500", "s500"),
    ]
    async with UpstreamRegistry(providers, env=ENV) as registry:
        with pytest.raises(UpstreamTimeoutError, match=r"no first byte within 0\.3 s"):
            await registry["stall"].stream(chat_call(stream=True))
        with pytest.raises(UpstreamServerError) as caught:
            await registry["s500"].stream(chat_call(stream=True))
        assert caught.value.status == 500
        stream = await registry["breaks"].stream(chat_call(stream=True))
        with pytest.raises(UpstreamError) as broken:
            async for _ in stream:
                pass
        assert isinstance(broken.value, UpstreamDisconnectedError | UpstreamProtocolError)
        assert stream.closed


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (500, UpstreamServerError, True),
        (503, UpstreamServerError, True),
        (429, UpstreamRateLimitedError, True),
        (400, UpstreamClientError, False),
        (401, UpstreamClientError, False),
        (404, UpstreamClientError, False),
    ],
)
async def test_status_errors_are_classified_and_redacted(
    fake: FakeProviders, status: int, kind: type[UpstreamError], retryable: bool
) -> None:
    async with UpstreamRegistry([openai(fake, f"status/{status}")], env=ENV) as registry:
        with pytest.raises(UpstreamError) as caught:
            await registry["oa"].send(chat_call())
    error = caught.value
    assert type(error) is kind
    assert error.status == status
    assert error.retryable is retryable
    assert error.error_type == "test_error"
    assert error.provider == "oa"
    for text in (error.message, str(error), repr(error), str(error.args)):
        assert OPENAI_KEY not in text
        assert "abcdefghijklmnop123" not in text
    assert error.message.startswith("Incorrect API key provided: [redacted].")
    assert "req_abc123" in error.message  # request ids stay: they help support
    if status == 429:
        assert error.retry_after_s == 2.0


async def test_anthropic_key_is_redacted_from_errors(fake: FakeProviders) -> None:
    async with UpstreamRegistry([anthropic(fake, "status/401")], env=ENV) as registry:
        with pytest.raises(UpstreamClientError) as caught:
            await registry["an"].send(messages_call())
    assert ANTHROPIC_KEY not in str(caught.value)


async def test_transport_errors(fake: FakeProviders) -> None:
    refused = Provider("down", ProviderKind.OPENAI, f"http://127.0.0.1:{closed_port()}/v1")
    providers = [refused, openai(fake, "slow/2", "slow", timeout_s=0.2),
                 openai(fake, "notjson", "html")]  # fmt: skip
    async with UpstreamRegistry(providers, env=ENV) as registry:
        with pytest.raises(UpstreamConnectError) as connect:
            await registry["down"].send(chat_call())
        assert connect.value.retry_same_provider
        assert connect.value.status is None
        assert connect.value.may_have_billed is False  # never sent
        with pytest.raises(UpstreamTimeoutError) as timeout:
            await registry["slow"].send(chat_call())
        assert timeout.value.outcome is Outcome.TIMEOUT
        assert timeout.value.may_have_billed is True  # sent: the provider may process it
        with pytest.raises(UpstreamProtocolError, match="not a JSON object") as garbled:
            await registry["html"].send(chat_call())
        assert garbled.value.may_have_billed is True


async def test_which_errors_may_have_been_billed() -> None:
    """Only a request that was sent and got no error status may have been billed."""
    connect_timeout = error_from_exception("p", aiohttp.ConnectionTimeoutError("connect"))
    assert isinstance(connect_timeout, UpstreamConnectTimeoutError)
    assert connect_timeout.may_have_billed is False
    assert error_from_exception("p", aiohttp.SocketTimeoutError("read")).may_have_billed
    assert error_from_exception("p", aiohttp.ServerDisconnectedError()).may_have_billed
    assert error_from_exception("p", aiohttp.ClientPayloadError("cut")).may_have_billed
    for status in (400, 429, 500, 503, 302):
        assert not error_from_response("p", status, b"{}", {}).may_have_billed
    assert not CircuitOpenError("p", "open").may_have_billed


async def test_concurrency_limit_per_provider(fake: FakeProviders) -> None:
    async with UpstreamRegistry([openai(fake, "slow/0.5", max_concurrency=1)], env=ENV) as reg:
        upstream = reg["oa"]
        first = asyncio.create_task(upstream.send(chat_call(timeout_s=2.0)))
        await asyncio.sleep(0.05)
        with pytest.raises(UpstreamBusyError) as busy:
            await upstream.send(chat_call(timeout_s=0.1))
        assert busy.value.outcome is None  # our saturation, not the provider's fault
        assert (await first).status == 200


async def test_missing_credential_is_reported_not_fatal(fake: FakeProviders) -> None:
    provider = Provider("oa", ProviderKind.OPENAI, f"{fake.url}/ok/v1", "UNSET_KEY_VAR")
    async with UpstreamRegistry([provider], env={}) as registry:
        assert registry.problems == {"oa": "environment variable UNSET_KEY_VAR is not set"}
        with pytest.raises(UpstreamNotConfiguredError):
            await registry["oa"].send(chat_call())
    assert fake.seen == []


def test_redact() -> None:
    text = (
        "key sk-proj-AbC123xyz789LMN, AKIAABCDEFGHIJKLMNOP, ghp_abcdefghijklmnopqrstuv12, "
        'x-api-key: "sk-ant-zzz", {"api_key": "hunter2hunter2"}, password=correcthorse, '
        "https://h/p?access_token=tok123456&x=1, Authorization: Basic QWxhZGRpbjpvcGVu, "
        "mysecretvalue, request req_011CT9abc, model claude-3-5-sonnet-20241022, "
        "0123456789abcdef0123456789abcdef0123456789"
    )
    out = redact(text, ["mysecretvalue"])
    for secret in ("AbC123xyz789", "AKIAABCD", "ghp_abc", "sk-ant-zzz", "hunter2", "correcthorse",
                   "tok123456", "QWxhZGRp", "mysecretvalue", "0123456789abcdef0123"):  # fmt: skip
        assert secret not in out, secret
    assert "req_011CT9abc" in out
    assert "claude-3-5-sonnet-20241022" in out
    assert "&x=1" in out
    assert redact("nothing to hide") == "nothing to hide"


# -- failover -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def prepare_recorder(
    calls: list[Target],
    *,
    skip: set[str] | None = None,
    stream: bool = False,
) -> Callable[[Target, Sequence[Attempt]], Any]:
    """A prepare callback as the gateway writes it: re-check the budget at the target
    model's price (here: refuse models in ``skip``), then build the call for its protocol."""

    async def prepare(target: Target, tried: Sequence[Attempt]) -> UpstreamCall | None:
        assert all(attempt.target != target for attempt in tried)  # each prepared once
        calls.append(target)
        if skip and target.model in skip:
            return None
        return chat_call(stream=stream)

    return prepare


async def test_failover_to_the_next_candidate_and_budget_recheck(fake: FakeProviders) -> None:
    providers = [openai(fake, "status/500", "a"), openai(fake, "ok", "b"),
                 openai(fake, "ok", "c")]  # fmt: skip
    async with UpstreamRegistry(providers, env=ENV) as registry:
        prepared: list[Target] = []
        targets = [Target("free-model", "a"), Target("paid-model", "b"), Target("cheap", "c")]
        result = await registry.failover.send(
            targets, prepare_recorder(prepared, skip={"paid-model"})
        )
        assert result.target == Target("cheap", "c")
        assert result.failed_over
        assert [a.outcome for a in result.attempts] == ["server_error", "skipped_by_caller", "ok"]
        assert prepared == targets  # the callback saw every candidate, in order, before it ran
        assert result.response.body == COMPLETION
        health = registry.health
        assert health.get("a").consecutive_failures == 1
        assert health.get("a").last_failure == "HTTP 500"
        assert health.get("c").calls(registry.failover.clock()) == pytest.approx(1, rel=0.01)
        assert health.get("b").calls(registry.failover.clock()) == 0


async def test_a_client_error_is_not_failed_over(fake: FakeProviders) -> None:
    providers = [openai(fake, "status/400", "a"), openai(fake, "ok", "b")]
    async with UpstreamRegistry(providers, env=ENV) as registry:
        prepared: list[Target] = []
        with pytest.raises(FailoverError) as caught:
            await registry.failover.send(
                [Target("m", "a"), Target("m", "b")], prepare_recorder(prepared)
            )
        assert caught.value.status == 400
        assert prepared == [Target("m", "a")]
        assert fake.count("ok") == 0
        assert registry.health.get("a").consecutive_failures == 0  # the provider is fine


async def test_connect_errors_retry_the_same_provider_once(fake: FakeProviders) -> None:
    down = Provider("down", ProviderKind.OPENAI, f"http://127.0.0.1:{closed_port()}/v1")
    async with UpstreamRegistry([down, openai(fake, "ok", "b")], env=ENV) as registry:
        prepared: list[Target] = []
        result = await registry.failover.send(
            [Target("m", "down"), Target("m", "b")], prepare_recorder(prepared)
        )
        assert [a.outcome for a in result.attempts] == ["connect_error", "connect_error", "ok"]
        assert prepared == [Target("m", "down"), Target("m", "b")]  # once per candidate
        assert registry.health.get("down").consecutive_failures == 2


async def test_all_candidates_fail(fake: FakeProviders) -> None:
    providers = [openai(fake, "status/503", "a"), openai(fake, "slow/2", "b", timeout_s=0.1)]
    async with UpstreamRegistry(providers, env=ENV) as registry:
        with pytest.raises(FailoverError) as caught:
            await registry.failover.send([Target("m", "a"), Target("m", "b")], prepare_recorder([]))
    error = caught.value
    assert error.status == 502
    assert [a.outcome for a in error.attempts] == ["server_error", "timeout"]
    assert isinstance(error.last_error, UpstreamTimeoutError)
    assert OPENAI_KEY not in str(error)
    assert "a/m: Incorrect API key provided: [redacted]" in str(error)


async def test_twenty_five_500s_open_the_circuit_and_later_calls_skip_it(
    fake: FakeProviders,
) -> None:
    """DESIGN §7.11 end to end: the failing provider leaves rotation after 5 failures and
    the status view says why and until when."""
    clock = Clock()
    providers = [openai(fake, "status/500", "bad"), openai(fake, "ok", "good")]
    async with UpstreamRegistry(providers, env=ENV) as registry:
        failover = Failover(registry, registry.health, clock=clock)
        for _ in range(25):
            result = await failover.send(
                [Target("m", "bad"), Target("m", "good")], prepare_recorder([])
            )
            assert result.target.provider == "good"
            clock.now += 0.01
        assert fake.count("status") == 5
        assert result.attempts[0].outcome == "skipped_circuit_open"
        snap = registry.health.get("bad").snapshot(clock.now)
        assert snap.state is HealthState.UNHEALTHY
        assert snap.reason == "5 consecutive failures (last: HTTP 500)"
        assert snap.retry_at_s is not None
        assert snap.retry_at_s > clock.now
        assert registry.health.states(clock.now) == {
            "bad": HealthState.UNHEALTHY,
            "good": HealthState.HEALTHY,
        }


async def test_half_open_probe_recovers_a_provider(fake: FakeProviders) -> None:
    clock = Clock()
    fake.flaky_failures = 5
    providers = [openai(fake, "flaky", "flaky"), openai(fake, "ok", "good")]
    async with UpstreamRegistry(providers, env=ENV) as registry:
        failover = Failover(registry, registry.health, clock=clock)
        targets = [Target("m", "flaky"), Target("m", "good")]
        for _ in range(5):
            await failover.send(targets, prepare_recorder([]))
        flaky = registry.health.get("flaky")
        assert flaky.circuit is CircuitState.OPEN
        clock.now = (flaky.retry_at or 0) + 0.1
        # Two concurrent requests: one probe reaches the provider, the other fails over.
        results = await asyncio.gather(
            failover.send(targets, prepare_recorder([])),
            failover.send(targets, prepare_recorder([])),
        )
        assert sorted(r.target.provider for r in results) == ["flaky", "good"]
        assert flaky.circuit is CircuitState.CLOSED
        assert fake.count("flaky") == 6


async def test_a_failing_prepare_callback_releases_the_probe(fake: FakeProviders) -> None:
    health = HealthBoard(config=HealthConfig(failure_threshold=1, cooldown_s=1.0))
    clock = Clock()
    async with UpstreamRegistry([openai(fake, "ok", "a")], env=ENV) as registry:
        failover = Failover(registry, health, clock=clock)
        health.get("a").record(clock.now, Outcome.ERROR)
        clock.now += 2

        async def refuse(target: Target, tried: Sequence[Attempt]) -> UpstreamCall | None:
            raise RuntimeError("budget store unreachable")

        with pytest.raises(RuntimeError):
            await failover.send([Target("m", "a")], refuse)
        assert health.get("a").snapshot(clock.now).probes_in_flight == 0
        result = await failover.send([Target("m", "a")], prepare_recorder([]))
        assert result.target.provider == "a"


async def test_stream_failover_before_the_first_byte(fake: FakeProviders) -> None:
    providers = [openai(fake, "stall", "stall", timeout_s=0.2), openai(fake, "ok", "good")]
    async with UpstreamRegistry(providers, env=ENV) as registry:
        result = await registry.failover.stream(
            [Target("m", "stall"), Target("m", "good")], prepare_recorder([], stream=True)
        )
        assert [a.outcome for a in result.attempts] == ["timeout", "ok"]
        good = registry.health.get("good")
        now = registry.failover.clock()
        assert good.calls(now) == 0  # recorded when the stream ends, not before
        async with result.response as stream:
            body = b"".join([chunk async for chunk in stream])
        assert body == b"".join(OPENAI_STREAM)
        assert stream.usage == Usage(12, 3, 4)
        assert good.calls(registry.failover.clock()) == pytest.approx(1, rel=0.01)
        assert registry.health.get("stall").last_failure == "timeout"


async def test_a_stream_that_breaks_after_the_first_byte_is_not_failed_over(
    fake: FakeProviders,
) -> None:
    providers = [openai(fake, "breaks", "breaks"), openai(fake, "ok", "good")]
    async with UpstreamRegistry(providers, env=ENV) as registry:
        result = await registry.failover.stream(
            [Target("m", "breaks"), Target("m", "good")], prepare_recorder([], stream=True)
        )
        assert result.target.provider == "breaks"

        async def drain() -> None:
            async with result.response as stream:
                async for _ in stream:
                    pass

        with pytest.raises(UpstreamError):
            await drain()
        assert registry.health.get("breaks").consecutive_failures == 1
        assert fake.count("ok") == 0


async def test_unconfigured_providers_are_skipped_without_health_impact(
    fake: FakeProviders,
) -> None:
    unset = Provider("unset", ProviderKind.ANTHROPIC, f"{fake.url}/ok", "NOT_SET")
    async with UpstreamRegistry([unset, openai(fake, "ok", "b")], env=ENV) as registry:
        result = await registry.failover.send(
            [Target("m", "unset"), Target("m", "b")], prepare_recorder([])
        )
        assert [a.outcome for a in result.attempts] == ["not_configured", "ok"]
        assert registry.health.get("unset").calls(registry.failover.clock()) == 0


async def test_openai_request_served_by_an_anthropic_upstream(fake: FakeProviders) -> None:
    """The pieces the gateway combines for a cross-protocol call."""
    openai_body = {"model": "smart", "messages": [{"role": "system", "content": "Be kind."},
                                                  {"role": "user", "content": "hi"}]}  # fmt: skip
    async with UpstreamRegistry([anthropic(fake)], env=ENV) as registry:
        upstream = registry["an"]

        async def prepare(target: Target, tried: Sequence[Attempt]) -> UpstreamCall:
            assert Protocol.OPENAI not in upstream.protocols  # so: translate
            body = openai_request_to_anthropic(openai_body, model="claude-x", default_max_tokens=64)
            return UpstreamCall(Protocol.ANTHROPIC, body)

        result = await registry.failover.send([Target("smart", "an")], prepare)
    sent = fake.seen[0].body
    assert sent["system"] == "Be kind."
    assert sent["max_tokens"] == 64
    reply = anthropic_response_to_openai(result.response.body, created=1, model="smart")
    assert reply["choices"][0]["message"]["content"] == "Hi!"
    assert reply["usage"]["prompt_tokens"] == 12
    assert result.response.usage == Usage(12, 3, 4)


# -- registry -------------------------------------------------------------------------------


async def test_registry_builds_every_kind_on_one_pool() -> None:
    providers = [
        Provider("o", ProviderKind.OPENAI, max_concurrency=10, timeout_s=100),
        Provider("a", ProviderKind.ANTHROPIC, max_concurrency=5),
        Provider("m", ProviderKind.MOCK),
    ]
    pool = SessionPool()
    registry = UpstreamRegistry(providers, env={})
    assert sorted(registry) == ["a", "m", "o"]
    assert len(registry) == 3
    assert registry.pool.limit == 10 + 5 + 64
    assert registry["o"].url(Protocol.OPENAI) == "https://api.openai.com/v1/chat/completions"
    assert registry["a"].url(Protocol.ANTHROPIC) == "https://api.anthropic.com/v1/messages"
    assert registry["m"].url(Protocol.ANTHROPIC) == "http://127.0.0.1:9100/v1/messages"
    assert registry["m"].url(Protocol.OPENAI) == "http://127.0.0.1:9100/v1/chat/completions"
    assert registry.health.get("o").config.probe_timeout_s == 200  # twice the call timeout
    assert registry.problems == {}
    assert not registry.pool.open  # created lazily, in the worker's loop
    await registry.close()
    await pool.close()
