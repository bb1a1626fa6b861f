"""Secrets (DESIGN.md §1): the upstream credential and the client keys never show in error
bodies, ``/metrics``, ``/healthz`` or logs — even when a provider echoes the credential back
in its error messages (OpenAI's "Incorrect API key provided: sk-…" does) — and a client's key
is never forwarded upstream."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import orjson
import pytest
from aiohttp import web

from gateway_support import (
    HELLO,
    Reply,
    Served,
    anthropic_client,
    http,
    open_reservations,
    openai_client,
    serve_config,
)
from spendgate.mock_upstream.runner import MockUpstreamThread

# Credentials of no recognisable vendor shape: only exact-secret redaction can hide them.
UPSTREAM_SECRET = "plain-upstream-credential-42"
LEAKY_SECRET = "leaky-upstream-credential-77"
CLIENT_SECRET = "client-key-alice-0451"
WRONG_CLIENT_SECRET = "client-key-wrong-9999"
SECRETS = (UPSTREAM_SECRET, LEAKY_SECRET, CLIENT_SECRET, WRONG_CLIENT_SECRET)

CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
  - {{id: leaky, kind: openai, base_url: "{leaky}/v1", api_key_env: LEAKY_KEY}}
  - {{id: leaky-anthropic, kind: anthropic, base_url: "{leaky}", api_key_env: LEAKY_KEY}}
models:
  - {{id: gpt-4o-mini, provider: alpha, cost_tier: low, max_output_tokens: 16384}}
  - {{id: echo, provider: leaky, upstream_id: gpt-4o, cost_tier: medium,
     max_output_tokens: 4096}}
  - {{id: echo-claude, provider: leaky-anthropic, upstream_id: claude-sonnet-4,
     cost_tier: medium, max_output_tokens: 4096}}
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false, failover: false}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
budgets:
  - {{id: acme-daily, scope: {{kind: project, id: acme}}, metric: usd, interval: daily,
     hard_limit: 100}}
"""
ENV = {"ALPHA_KEY": UPSTREAM_SECRET, "LEAKY_KEY": LEAKY_SECRET, "ALICE_KEY": CLIENT_SECRET}


class LeakyUpstream:
    """A provider that fails every call with an error message quoting the credential it was
    sent, and remembers the headers it received."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.seen: list[dict[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self._sock = sock
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        self.seen.append(dict(request.headers))
        credential = request.headers.get("x-api-key") or request.headers.get("authorization", "")
        message = f"Incorrect API key provided: {credential}. Headers were {dict(request.headers)}."
        if request.path.endswith("/messages"):
            body = {"type": "error", "error": {"type": "api_error", "message": message}}
        else:
            body = {"error": {"message": message, "type": "server_error", "code": None}}
        return web.Response(
            status=self.status, body=orjson.dumps(body), content_type="application/json"
        )

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()

    def __enter__(self) -> LeakyUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # includes any formatted traceback


_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "aiohttp", "spendgate")


@pytest.fixture(scope="module")
def logs() -> Iterator[Captured]:
    """Every log record at DEBUG and up, from the root and from uvicorn's own loggers (which
    do not propagate), for the whole module."""
    handler = Captured()
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture(scope="module")
def leaky() -> Iterator[LeakyUpstream]:
    with LeakyUpstream(status=500) as leaky:
        yield leaky


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0) as mock:
        yield mock


@pytest.fixture(scope="module")
def served(
    logs: Captured,
    mock: MockUpstreamThread,
    leaky: LeakyUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    database: Path = tmp_path_factory.mktemp("secrets") / "journal.db"
    config = CONFIG.format(mock=mock.base_url, leaky=leaky.base_url)
    with serve_config(
        config, ENV, database=database, log_level="debug", configure_logging=False
    ) as served:
        yield served


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} shows a secret"


def assert_reply_clean(reply: Reply, where: str) -> None:
    assert_no_secret(reply.text, where)
    assert_no_secret(repr(dict(reply.headers)), where + " headers")


def test_upstream_errors_quoting_the_credential_are_redacted(
    served: Served, leaky: LeakyUpstream
) -> None:
    auth = {"authorization": f"Bearer {CLIENT_SECRET}"}
    for body in (
        {"model": "echo", "messages": HELLO},
        {"model": "echo", "messages": HELLO, "stream": True},
        {"model": "echo-claude", "messages": HELLO},
    ):
        reply = http("POST", served.url + "/v1/chat/completions", json=body, **auth)
        assert reply.status_code == 502
        assert reply.json()["error"]["code"] == "upstream_error"
        assert "[redacted]" in reply.text  # the provider's message is kept, minus the secret
        assert_reply_clean(reply, f"502 for {body}")
    with pytest.raises(anthropic.InternalServerError) as failed:
        anthropic_client(served, CLIENT_SECRET).messages.create(
            model="echo-claude", max_tokens=64, messages=HELLO
        )
    assert_no_secret(str(failed.value.body), "Anthropic-route 502")
    with pytest.raises(openai.InternalServerError) as failed_openai:
        openai_client(served, CLIENT_SECRET).chat.completions.create(model="echo", messages=HELLO)
    assert_no_secret(str(failed_openai.value.body), "OpenAI-route 502")
    assert open_reservations(served) == 0


def test_client_keys_are_not_echoed_nor_forwarded(
    served: Served, leaky: LeakyUpstream, mock: MockUpstreamThread
) -> None:
    wrong = http(
        "POST",
        served.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": HELLO},
        authorization=f"Bearer {WRONG_CLIENT_SECRET}",
    )
    assert wrong.status_code == 401
    assert_reply_clean(wrong, "401")
    wrong_models = http("GET", served.url + "/v1/models", **{"x-api-key": WRONG_CLIENT_SECRET})
    assert wrong_models.status_code == 401
    assert_reply_clean(wrong_models, "401 on /v1/models")

    completion = openai_client(served, CLIENT_SECRET).chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=20
    )
    assert completion.choices[0].message.content
    http(
        "POST",
        served.url + "/v1/chat/completions",
        json={"model": "echo", "messages": HELLO},
        authorization=f"Bearer {CLIENT_SECRET}",
        **{"x-api-key": CLIENT_SECRET},
    )
    # Upstreams get their own credential, never the client's key (nor its other headers).
    assert leaky.seen
    for headers in leaky.seen:
        lowered = {name.lower(): value for name, value in headers.items()}
        assert LEAKY_SECRET in lowered.get("authorization", "") + lowered.get("x-api-key", "")
        for client_key in (CLIENT_SECRET, WRONG_CLIENT_SECRET):
            assert client_key not in repr(headers)
    for recorded in mock.stats.history:
        assert_no_secret(repr(recorded.headers), "headers the mock received")


def test_metrics_and_health_show_no_secret(served: Served) -> None:
    # Enough failures for the leaky provider's circuit to open, with a reason shown.
    for _ in range(5):
        http(
            "POST",
            served.url + "/v1/chat/completions",
            json={"model": "echo", "messages": HELLO},
            authorization=f"Bearer {CLIENT_SECRET}",
        )
    metrics = http("GET", served.url + "/metrics")
    assert "spendgate_requests_total" in metrics.text
    assert_reply_clean(metrics, "/metrics")
    health = http("GET", served.url + "/healthz")
    assert health.json()["providers"]["leaky"]["circuit"] == "open"
    assert health.json()["providers"]["leaky"]["reason"]
    assert_reply_clean(health, "/healthz")


def test_logs_show_no_secret(served: Served, logs: Captured) -> None:
    """Run last in this module: everything above was logged by then."""
    # The capture does work: uvicorn's access log and the gateway's own warnings (the leaky
    # provider's circuit) are in it.
    assert any(line.startswith("uvicorn.access") for line in logs.lines)
    assert any(line.startswith("spendgate.") for line in logs.lines)
    for line in logs.lines:
        assert_no_secret(line, f"log line {line[:80]!r}")
