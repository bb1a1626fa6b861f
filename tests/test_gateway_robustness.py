"""The gateway when things go wrong on its own side: a client that hangs up while still sending
its body, and an unexpected error inside the gateway after a reservation was made. Neither may
leave a reservation holding budget, nor lose usage the provider already billed."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway_support import (
    HELLO,
    Served,
    counter,
    decisions,
    eventually,
    http,
    open_reservations,
    openai_client,
    serve_config,
)
from spendgate.domain.translate import AnthropicToOpenAIStream
from spendgate.gateway import proxy
from spendgate.mock_upstream.runner import MockUpstreamThread

CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
  - {{id: beta, kind: anthropic, base_url: "{mock}", api_key_env: BETA_KEY}}
models:
  - {{id: gpt-4o-mini, provider: alpha, cost_tier: low, max_output_tokens: 16384}}
  - {{id: claude-sonnet-4, provider: beta, cost_tier: medium, max_output_tokens: 8192}}
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false, failover: false}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
budgets:
  - {{id: acme-tokens, scope: {{kind: project, id: acme}}, metric: tokens, interval: daily,
     hard_limit: 100000000}}
"""
ENV = {
    "ALPHA_KEY": "sk-alpha-upstream-secret",
    "BETA_KEY": "sk-beta-upstream-secret",
    "ALICE_KEY": "sg-alice",
}


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def errors(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno >= logging.ERROR]


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0) as mock:
        yield mock


@pytest.fixture(scope="module")
def served(mock: MockUpstreamThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    database: Path = tmp_path_factory.mktemp("robustness") / "journal.db"
    with serve_config(CONFIG.format(mock=mock.base_url), ENV, database=database) as served:
        yield served


@pytest.fixture
def logs() -> Iterator[Captured]:
    """Every record of the server's loggers (uvicorn's do not propagate to the root)."""
    handler = Captured()
    loggers = [logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def test_a_client_gone_while_sending_its_body_is_no_server_error(
    served: Served, mock: MockUpstreamThread, logs: Captured
) -> None:
    port = int(served.url.rsplit(":", 1)[1])
    before_decisions = len(decisions(served))
    before_upstream = mock.stats.total
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: test\r\n"
            b"authorization: Bearer sg-alice\r\ncontent-type: application/json\r\n"
            b"content-length: 100000\r\n\r\n" + b'{"model": "gpt-4o-mini", "messages": ['
        )
    assert eventually(lambda: 'status="499"' in _metrics(served), timeout_s=3)
    assert not logs.errors, [r.getMessage() for r in logs.errors]
    assert len(decisions(served)) == before_decisions
    assert mock.stats.total == before_upstream
    assert open_reservations(served) == 0


def _metrics(served: Served) -> str:
    return http("GET", served.url + "/metrics").text


def test_an_internal_error_after_the_provider_answered_still_settles(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider answered (and billed), then the gateway failed translating the answer:
    the client gets a 500, the usage is still counted and nothing stays reserved."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("translation bug")

    monkeypatch.setattr(proxy, "anthropic_response_to_openai", broken)
    before = counter(served, "acme-tokens", "acme").settled
    with pytest.raises(openai.InternalServerError):
        openai_client(served, "sg-alice").chat.completions.create(
            model="claude-sonnet-4", messages=HELLO, max_tokens=50
        )
    assert open_reservations(served) == 0
    assert counter(served, "acme-tokens", "acme").settled > before


def test_an_internal_error_before_the_upstream_call_is_journaled(
    served: Served, mock: MockUpstreamThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request that got a decision is journaled whatever happens next: a gateway bug
    before the call (here, in translating the request) answers 500, releases the
    reservation and journals the decision as a gateway error."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("translation bug")

    monkeypatch.setattr(proxy, "openai_request_to_anthropic", broken)
    before_upstream = mock.stats.total
    before = {d.decision.id for d in decisions(served)}
    with pytest.raises(openai.InternalServerError):
        openai_client(served, "sg-alice").chat.completions.create(
            model="claude-sonnet-4", messages=HELLO, max_tokens=50
        )
    [failed] = [d.decision for d in decisions(served) if d.decision.id not in before]
    assert failed.status == "gateway_error"
    assert failed.usage is None
    assert open_reservations(served) == 0
    assert mock.stats.total == before_upstream


def test_an_internal_error_mid_stream_still_settles(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    feed = AnthropicToOpenAIStream.feed

    def flaky(self: AnthropicToOpenAIStream, chunk: bytes) -> bytes:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("translation bug")
        return feed(self, chunk)

    monkeypatch.setattr(AnthropicToOpenAIStream, "feed", flaky)
    before = counter(served, "acme-tokens", "acme").settled
    stream = openai_client(served, "sg-alice").chat.completions.create(
        model="claude-sonnet-4", messages=HELLO, max_tokens=50, stream=True
    )
    # The response had started: the connection is cut (the SDK may or may not notice).
    with contextlib.suppress(Exception):
        for _ in stream:
            pass
    assert eventually(lambda: open_reservations(served) == 0)
    assert counter(served, "acme-tokens", "acme").settled > before
    assert "gateway_error" in {d.decision.status for d in decisions(served)}


def test_requests_still_work_afterwards(served: Served) -> None:
    completion = openai_client(served, "sg-alice").chat.completions.create(
        model="claude-sonnet-4", messages=HELLO, max_tokens=20
    )
    assert completion.choices[0].message.content
    assert open_reservations(served) == 0
