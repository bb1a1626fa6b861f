"""How a stream ends, end to end: a stream the upstream breaks off (or ends early, without its
terminal event) ends with an error event both official SDKs raise, and is settled on what was
streamed — estimated, marked as such, never on Anthropic's ``message_start`` placeholder of
one output token; generated text that looks like a terminal event (``data: [DONE]``,
``message_stop``) neither ends the stream nor holds the rest of it back."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from gateway_support import (
    HELLO,
    Served,
    anthropic_client,
    counter,
    inject_mock_headers,
    open_reservations,
    openai_client,
    serve_config,
    stored,
)
from spendgate.domain.requests import Protocol
from spendgate.domain.tokens import estimate_text_tokens
from spendgate.mock_upstream.runner import MockUpstreamThread

CONFIG = """
providers:
  - {{id: cut-oa, kind: openai, base_url: "{cut}/v1", api_key_env: UPSTREAM_KEY}}
  - {{id: cut-an, kind: anthropic, base_url: "{cut}", api_key_env: UPSTREAM_KEY}}
  - {{id: early-oa, kind: openai, base_url: "{early}/v1", api_key_env: UPSTREAM_KEY}}
  - {{id: early-an, kind: anthropic, base_url: "{early}", api_key_env: UPSTREAM_KEY}}
  - {{id: paced-oa, kind: openai, base_url: "{paced}/v1", api_key_env: UPSTREAM_KEY}}
  - {{id: paced-an, kind: anthropic, base_url: "{paced}", api_key_env: UPSTREAM_KEY}}
models:
  - {{id: cut-gpt, provider: cut-oa, upstream_id: gpt-4o-mini, cost_tier: low}}
  - {{id: cut-claude, provider: cut-an, upstream_id: claude-sonnet-4, cost_tier: medium}}
  - {{id: early-gpt, provider: early-oa, upstream_id: gpt-4o-mini, cost_tier: low}}
  - {{id: early-claude, provider: early-an, upstream_id: claude-sonnet-4, cost_tier: medium}}
  - {{id: paced-gpt, provider: paced-oa, upstream_id: gpt-4o-mini, cost_tier: low}}
  - {{id: paced-claude, provider: paced-an, upstream_id: claude-sonnet-4, cost_tier: medium}}
routing: {{default_model: cut-gpt, mode: enforced, smart_routing: false, failover: false}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
budgets:
  - {{id: acme-tokens, scope: {{kind: project, id: acme}}, metric: tokens, interval: daily,
     hard_limit: 100000000}}
"""
ENV = {"UPSTREAM_KEY": "sk-upstream-secret", "ALICE_KEY": "sg-alice"}
# Generated text that looks like the end of an OpenAI stream, then of an Anthropic one.
TRICKY = (
    'Look:\n\ndata: [DONE]\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n'
    "event: response.completed\n\n"
    "The answer goes on after both markers, and on, and on, until it really ends here."
)


@pytest.fixture(scope="module")
def mocks() -> Iterator[dict[str, MockUpstreamThread]]:
    # Every stream is broken off after 8 events (mid-answer, before Anthropic's
    # message_delta), or ended cleanly after 8 events without the rest.
    cut = MockUpstreamThread(latency_ms=0)
    inject_mock_headers(cut, {"x-mock-disconnect-after-chunks": "8"})
    early = MockUpstreamThread(latency_ms=0)
    inject_mock_headers(early, {"x-mock-end-after-chunks": "8"})
    paced = MockUpstreamThread(latency_ms=0, stream_chunks=4, chunk_delay_ms=100, reply_text=TRICKY)
    with cut, early, paced:
        yield {"cut": cut, "early": early, "paced": paced}


@pytest.fixture
def served(mocks: dict[str, MockUpstreamThread], tmp_path: Path) -> Iterator[Served]:
    # One gateway per test: each cut stream counts against its provider's health, and
    # enough of them in one gateway would open the circuit for the next test.
    database = tmp_path / "journal.db"
    config = CONFIG.format(**{name: mock.base_url for name, mock in mocks.items()})
    with serve_config(config, ENV, database=database) as served:
        yield served


def _tokens(served: Served) -> int:
    return int(counter(served, "acme-tokens", "acme").settled)


def _hello_prompt_tokens() -> int:
    """The mock's count of HELLO (docs/mock-upstream.md): what message_start reports."""
    return 4 + math.ceil(len(HELLO[0]["content"].encode()) / 4)


def _openai_stream(served: Served, model: str) -> tuple[str, str, Exception | None]:
    """Stream with the OpenAI SDK: (decision id, text received, error raised)."""
    raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model=model, messages=HELLO, max_tokens=500, stream=True
    )
    text = ""
    try:
        for chunk in raw.parse():
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
    except openai.APIError as error:
        return raw.headers["x-spendgate-decision-id"], text, error
    return raw.headers["x-spendgate-decision-id"], text, None


def _anthropic_stream(served: Served, model: str) -> tuple[str, str, Exception | None]:
    """Stream with the Anthropic SDK: (decision id, text received, error raised)."""
    raw = anthropic_client(served, "sg-alice").messages.with_raw_response.create(
        model=model, max_tokens=500, messages=HELLO, stream=True
    )
    text = ""
    try:
        for event in raw.parse():
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                text += event.delta.text
    except anthropic.APIError as error:
        return raw.headers["x-spendgate-decision-id"], text, error
    return raw.headers["x-spendgate-decision-id"], text, None


def _responses_stream(served: Served, model: str) -> tuple[str, str, Exception | None]:
    """Stream with the OpenAI SDK's Responses API: (decision id, text received, error)."""
    raw = openai_client(served, "sg-alice").responses.with_raw_response.create(
        model=model, input=HELLO, max_output_tokens=500, stream=True
    )
    text = ""
    try:
        for event in raw.parse():
            if event.type == "response.output_text.delta":
                text += event.delta
    except openai.APIError as error:
        return raw.headers["x-spendgate-decision-id"], text, error
    return raw.headers["x-spendgate-decision-id"], text, None


STREAMERS = {
    Protocol.OPENAI: _openai_stream,
    Protocol.ANTHROPIC: _anthropic_stream,
    Protocol.RESPONSES: _responses_stream,
}


@pytest.mark.parametrize("client", list(STREAMERS))
@pytest.mark.parametrize("model", ["cut-gpt", "cut-claude", "early-gpt", "early-claude"])
def test_a_stream_the_upstream_breaks_ends_with_an_error_the_sdk_raises(
    served: Served, client: Protocol, model: str
) -> None:
    before = _tokens(served)
    decision_id, text, error = STREAMERS[client](served, model)
    assert text  # the part streamed before the break reached the client
    assert error is not None, "the client took a partial answer for a whole one"
    assert "broke off" in str(error)
    record = stored(served, decision_id)
    assert record.decision.status == "upstream_broke_mid_stream"
    assert record.usage_estimated is True
    usage = record.decision.usage
    assert usage is not None
    assert usage.output_tokens == estimate_text_tokens(text)
    assert _tokens(served) - before == usage.total_tokens
    assert open_reservations(served) == 0


@pytest.mark.parametrize("client", list(STREAMERS))
def test_an_anthropic_stream_cut_before_its_final_usage_is_settled_from_its_text(
    served: Served, client: Protocol
) -> None:
    """message_start reports the input and a placeholder ``output_tokens: 1``; the real
    output count comes in message_delta, which never arrived. The input is the provider's
    own count; the output is estimated from the text streamed."""
    decision_id, text, _ = STREAMERS[client](served, "cut-claude")
    record = stored(served, decision_id)
    usage = record.decision.usage
    assert usage is not None
    assert usage.input_tokens == _hello_prompt_tokens()
    assert usage.output_tokens == estimate_text_tokens(text) > 1
    assert record.usage_estimated is True
    assert record.decision.actual_cost_usd is not None
    assert record.decision.actual_cost_usd > 0


@pytest.mark.parametrize("client", list(STREAMERS))
@pytest.mark.parametrize("model", ["paced-gpt", "paced-claude"])
def test_text_that_looks_like_the_end_of_a_stream_does_not_end_it(
    served: Served, client: Protocol, model: str
) -> None:
    """The whole answer streams as it comes: its last text arrives while the upstream is
    still sending (so before the request is settled), not held back from where a marker
    appeared inside the text; and the stream ends normally, exactly settled."""
    received_early: list[bool] = []

    def on_text(text: str) -> None:
        if text == TRICKY:  # the last piece of text just arrived
            received_early.append(open_reservations(served) == 1)

    if client is Protocol.OPENAI:
        raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
            model=model, messages=HELLO, max_tokens=500, stream=True
        )
        text = ""
        for chunk in raw.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
                on_text(text)
    elif client is Protocol.RESPONSES:
        raw = openai_client(served, "sg-alice").responses.with_raw_response.create(
            model=model, input=HELLO, max_output_tokens=500, stream=True
        )
        text = ""
        for event in raw.parse():
            if event.type == "response.output_text.delta":
                text += event.delta
                on_text(text)
    else:
        raw = anthropic_client(served, "sg-alice").messages.with_raw_response.create(
            model=model, max_tokens=500, messages=HELLO, stream=True
        )
        text = ""
        for event in raw.parse():
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                text += event.delta.text
                on_text(text)
    assert text == TRICKY
    assert received_early == [True]
    record = stored(served, raw.headers["x-spendgate-decision-id"])
    assert record.decision.status == "ok"
    assert record.usage_estimated is False
    assert open_reservations(served) == 0


@pytest.mark.parametrize("protocol", [Protocol.OPENAI, Protocol.ANTHROPIC, Protocol.RESPONSES])
def test_the_end_of_a_stream_is_found_at_event_level_in_any_chunking(
    protocol: Protocol,
) -> None:
    from spendgate.gateway.proxy import _StreamEnd

    content = TRICKY.replace("\n", "\\n").replace('"', '\\"').encode()
    if protocol is Protocol.OPENAI:
        body = b'data: {"choices":[{"delta":{"content":"' + content + b'"}}]}\n\n'
        end = b"data: [DONE]\n\n"
    elif protocol is Protocol.RESPONSES:
        body = (
            b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
            b'"delta":"' + content + b'"}\n\n'
        )
        end = b'event: response.completed\ndata: {"type":"response.completed"}\n\n'
    else:
        body = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":'
            b'{"type":"text_delta","text":"' + content + b'"}}\n\n'
        )
        end = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    for newline in (b"\n", b"\r\n"):
        stream = (body + end).replace(b"\n", newline)
        boundary = len(body.replace(b"\n", newline))
        for step in range(1, len(stream) + 1):
            detector = _StreamEnd(protocol)
            for start in range(0, len(stream), step):
                seen = detector.feed(stream[start : start + step])
                # Never within the content; found once the marker has fully arrived.
                assert seen == (start + step >= boundary + len(end.split(b"\n")[0])), (
                    newline,
                    step,
                    start,
                )
