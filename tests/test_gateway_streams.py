"""Metering what the provider did not report (issue 3, DESIGN.md §7.6): a client that goes away
mid-stream is charged for the input and the output streamed so far; a provider that reports no
usage is settled on an estimate marked as such; an OpenAI stream whose client did not ask for
usage is still settled exactly (the gateway asks for it) without the client seeing the extra
usage chunk."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from gateway_support import (
    HELLO,
    Served,
    anthropic_client,
    counter,
    eventually,
    last_upstream_body,
    leave_stream,
    open_reservations,
    openai_client,
    quiet_mock,
    serve_config,
    stored,
)
from spendgate.domain.tokens import estimate_text_tokens
from spendgate.mock_upstream.runner import MockUpstreamThread

CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
  - {{id: quiet, kind: openai, base_url: "{quiet}/v1", api_key_env: ALPHA_KEY}}
  - {{id: quiet-anthropic, kind: anthropic, base_url: "{quiet}", api_key_env: ALPHA_KEY}}
models:
  - {{id: gpt-4o-mini, provider: alpha, capabilities: [json, vision, tools], cost_tier: low,
     max_output_tokens: 16384}}
  # Served by a mock that never reports usage.
  - {{id: silent, provider: quiet, upstream_id: gpt-4o, cost_tier: medium,
     max_output_tokens: 16384}}
  - {{id: silent-claude, provider: quiet-anthropic, upstream_id: claude-sonnet-4,
     cost_tier: medium, max_output_tokens: 8192}}
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false, failover: false}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
budgets:
  - {{id: acme-tokens, scope: {{kind: project, id: acme}}, metric: tokens, interval: daily,
     hard_limit: 100000000}}
"""
ENV = {"ALPHA_KEY": "sk-alpha-upstream-secret", "ALICE_KEY": "sg-alice"}
CHAT = "/v1/chat/completions"
# A long answer in many small SSE events, so a client can leave early.
LONG = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Write the budget team a long letter."}],
    "max_tokens": 8000,
    "stream": True,
}


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0, stream_chunks=200, output_tokens=2000) as mock:
        yield mock


@pytest.fixture(scope="module")
def quiet() -> Iterator[MockUpstreamThread]:
    """A mock that reports no usage at all (as some OpenAI-compatible servers do)."""
    with quiet_mock() as mock:
        yield mock


@pytest.fixture(scope="module")
def served(
    mock: MockUpstreamThread, quiet: MockUpstreamThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    database: Path = tmp_path_factory.mktemp("streams") / "journal.db"
    config = CONFIG.format(mock=mock.base_url, quiet=quiet.base_url)
    with serve_config(config, ENV, database=database) as served:
        yield served


def _tokens(served: Served) -> Decimal:
    return counter(served, "acme-tokens", "acme").settled


def test_a_client_gone_mid_stream_is_charged_for_input_and_output_so_far(
    served: Served, mock: MockUpstreamThread
) -> None:
    # The whole stream first (no pacing): what the provider bills for the full answer.
    before = _tokens(served)
    full_id = leave_stream(served, CHAT, LONG, events=None)
    full = stored(served, full_id).decision
    assert full.usage is not None
    assert full.status == "ok"
    full_spend = _tokens(served) - before
    assert full_spend == full.usage.total_tokens

    # The same request, paced, left after 3 events: the gateway stops, closes the upstream
    # stream and settles what was used so far.
    mock.options.chunk_delay_ms = 10  # 200 events: 2 s for the whole answer
    disconnects = mock.stats.client_disconnects
    try:
        before = _tokens(served)
        partial_id = leave_stream(served, CHAT, LONG, events=3)
        assert eventually(lambda: _tokens(served) > before and open_reservations(served) == 0)
    finally:
        mock.options.chunk_delay_ms = 0
    partial_spend = _tokens(served) - before
    assert full.usage.input_tokens < partial_spend < full_spend
    partial = stored(served, partial_id)
    assert partial.decision.status == "client_disconnected"
    assert partial.usage_estimated is True
    assert partial.decision.usage is not None
    assert 0 < partial.decision.usage.output_tokens < full.usage.output_tokens // 2
    assert counter(served, "acme-tokens", "acme").reserved == 0
    # The upstream stream was closed too, not left running to its end.
    assert eventually(lambda: mock.stats.client_disconnects > disconnects)


def test_usage_missing_from_a_reply_is_estimated_and_marked(
    served: Served, quiet: MockUpstreamThread
) -> None:
    before = _tokens(served)
    raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="silent", messages=HELLO, max_tokens=200
    )
    completion = raw.parse()
    assert completion.usage is None  # passed through as the provider sent it
    text = completion.choices[0].message.content
    assert text
    record = stored(served, raw.headers["x-spendgate-decision-id"])
    assert record.usage_estimated is True
    usage = record.decision.usage
    assert usage is not None
    assert usage.output_tokens == estimate_text_tokens(text)
    assert usage.input_tokens > 0
    assert record.decision.actual_cost_usd is not None
    assert record.decision.actual_cost_usd > 0
    assert _tokens(served) - before == usage.total_tokens
    assert open_reservations(served) == 0


def test_usage_missing_from_a_stream_is_estimated_and_marked(
    served: Served, quiet: MockUpstreamThread
) -> None:
    before = _tokens(served)
    stream = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="silent",
        messages=HELLO,
        max_tokens=200,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert all(chunk.usage is None for chunk in chunks)
    assert last_upstream_body(quiet)["stream_options"] == {"include_usage": True}
    record = stored(served, stream.headers["x-spendgate-decision-id"])
    assert record.decision.status == "ok"
    assert record.usage_estimated is True
    assert record.decision.usage is not None
    assert record.decision.usage.output_tokens == estimate_text_tokens(text)
    assert _tokens(served) - before == record.decision.usage.total_tokens
    assert open_reservations(served) == 0


def test_usage_missing_from_an_anthropic_stream_is_estimated_and_marked(
    served: Served, quiet: MockUpstreamThread
) -> None:
    before = _tokens(served)
    sdk = anthropic_client(served, "sg-alice")
    raw = sdk.messages.with_raw_response.create(
        model="silent-claude", max_tokens=200, messages=HELLO, stream=True
    )
    decision_id = raw.headers["x-spendgate-decision-id"]
    text = "".join(
        event.delta.text
        for event in raw.parse()
        if event.type == "content_block_delta" and event.delta.type == "text_delta"
    )
    assert text
    record = stored(served, decision_id)
    assert record.usage_estimated is True
    assert record.decision.usage is not None
    assert record.decision.usage.output_tokens == estimate_text_tokens(text)
    assert _tokens(served) - before == record.decision.usage.total_tokens
    assert open_reservations(served) == 0


def test_a_stream_without_include_usage_is_settled_exactly(
    served: Served, mock: MockUpstreamThread
) -> None:
    """The client did not ask for usage: the gateway asks the provider for it (so the
    settlement is exact, not estimated) and does not pass the extra usage-only chunk (whose
    ``choices`` is empty) to a client that is not expecting it."""
    before = _tokens(served)
    stream = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=100, stream=True
    )
    chunks = list(stream.parse())
    assert last_upstream_body(mock)["stream_options"] == {"include_usage": True}
    assert chunks
    assert all(chunk.choices for chunk in chunks)  # `chunk.choices[0]` works for every chunk
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    record = stored(served, stream.headers["x-spendgate-decision-id"])
    assert record.usage_estimated is False
    assert record.decision.usage is not None
    assert _tokens(served) - before == record.decision.usage.total_tokens
    assert open_reservations(served) == 0


def test_a_stream_with_include_usage_gets_the_usage_chunk(
    served: Served, mock: MockUpstreamThread
) -> None:
    stream = openai_client(served, "sg-alice").chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,
        max_tokens=100,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_the_usage_chunk_filter_keeps_everything_else_in_any_chunking(newline: bytes) -> None:
    from spendgate.gateway.proxy import _UsageChunkFilter

    def event(data: bytes) -> bytes:
        return b"data: " + data + newline + newline

    content = [
        event(b'{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}'),
        event(b'{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'),
    ]
    usage = event(b'{"id":"c","choices": [ ],"usage":{"prompt_tokens":3}}')
    done = event(b"[DONE]")
    stream = b"".join([*content, usage, done])
    expected = b"".join([*content, done])
    for step in range(1, len(stream) + 1):  # every chunk size, from bytes to the whole
        relay = _UsageChunkFilter()
        pieces = [relay.feed(stream[i : i + step]) for i in range(0, len(stream), step)]
        assert b"".join(pieces) + relay.close() == expected
