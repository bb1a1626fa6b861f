"""``POST /v1/responses`` beyond the plain OpenAI path, through a served gateway and the
official ``openai`` SDK: translated to an Anthropic provider and back (plain, streamed, tool
calls), a clear 400 for what Anthropic cannot take, stateful requests passed through to
their OpenAI-kind provider only (reason code, conservative reservation, settled on the
provider's usage, never moved elsewhere), a client gone mid-stream, and unknown items."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from gateway_support import (
    Served,
    counter,
    eventually,
    http,
    last_upstream_body,
    leave_stream,
    open_reservations,
    openai_client,
    serve_config,
    stored,
)
from spendgate.mock_upstream.runner import MockUpstreamThread

CONTEXT = 128_000
CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: UPSTREAM_KEY}}
  - {{id: beta, kind: openai, base_url: "{mock}/v1", api_key_env: UPSTREAM_KEY}}
  - {{id: claude, kind: anthropic, base_url: "{mock}", api_key_env: UPSTREAM_KEY}}
models:
  - {{id: gpt-4o, provider: alpha, cost_tier: high, context_window: {context},
     max_output_tokens: 16384, capabilities: [tools, json, vision]}}
  - {{id: gpt-4o-mini, provider: beta, cost_tier: low, context_window: {context},
     max_output_tokens: 16384, capabilities: [tools, json, vision]}}
  - {{id: claude-sonnet-4, provider: claude, cost_tier: medium, context_window: 200000,
     max_output_tokens: 8192, capabilities: [tools, vision]}}
routing: {{default_model: gpt-4o, mode: enforced, smart_routing: {smart}, failover: true}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
budgets:
  - {{id: acme-tokens, scope: {{kind: project, id: acme}}, metric: tokens, interval: daily,
     hard_limit: 100000000}}
"""
ENV = {"UPSTREAM_KEY": "sk-upstream", "ALICE_KEY": "sg-alice"}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0, stream_chunks=5) as mock:
        yield mock


def _serve(mock: MockUpstreamThread, database: Path, *, smart: bool) -> Iterator[Served]:
    config = CONFIG.format(mock=mock.base_url, context=CONTEXT, smart=str(smart).lower())
    with serve_config(config, ENV, database=database) as served:
        yield served


@pytest.fixture(scope="module")
def served(mock: MockUpstreamThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(mock, tmp_path_factory.mktemp("plain") / "journal.db", smart=False)


@pytest.fixture(scope="module")
def smart(mock: MockUpstreamThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(mock, tmp_path_factory.mktemp("smart") / "journal.db", smart=True)


def _tokens(served: Served) -> int:
    return int(counter(served, "acme-tokens", "acme").settled)


# -- Anthropic --------------------------------------------------------------------------------


def test_a_response_from_an_anthropic_model_is_translated_both_ways(
    served: Served, mock: MockUpstreamThread
) -> None:
    client = openai_client(served, "sg-alice")
    raw = client.responses.with_raw_response.create(
        model="claude-sonnet-4",
        instructions="Answer briefly.",
        input=[
            {"role": "developer", "content": "Be kind."},
            {"role": "user", "content": [{"type": "input_text", "text": "Say hello."}]},
        ],
        max_output_tokens=300,
    )
    response = raw.parse()
    sent = last_upstream_body(mock)
    assert mock.stats.history[-1].path == "/v1/messages"
    assert sent["model"] == "claude-sonnet-4"
    assert sent["system"] == "Answer briefly.\n\nBe kind."
    assert sent["messages"] == [{"role": "user", "content": "Say hello."}]
    assert sent["max_tokens"] == 300
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text
    assert response.usage is not None
    decision = stored(served, raw.headers["x-spendgate-decision-id"]).decision
    assert decision.target_provider == "claude"
    assert decision.status == "ok"
    assert decision.usage is not None
    assert decision.usage.input_tokens == response.usage.input_tokens
    assert decision.usage.output_tokens == response.usage.output_tokens


def test_a_streamed_response_from_an_anthropic_model_has_the_responses_events(
    served: Served,
) -> None:
    client = openai_client(served, "sg-alice")
    before = _tokens(served)
    stream = client.responses.create(
        model="claude-sonnet-4", input="Tell me something.", max_output_tokens=400, stream=True
    )
    events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert text
    assert final.output_text == text
    assert final.usage is not None
    decision_id = stream.response.headers["x-spendgate-decision-id"]
    decision = stored(served, decision_id).decision
    assert decision.usage is not None
    assert decision.usage.output_tokens == final.usage.output_tokens
    assert _tokens(served) - before == decision.usage.total_tokens


@pytest.mark.parametrize("stream", [False, True])
def test_an_anthropic_tool_call_comes_back_as_a_function_call(served: Served, stream: bool) -> None:
    client = openai_client(served, "sg-alice")
    if stream:
        events = list(
            client.responses.create(
                model="claude-sonnet-4", input="Weather in Oslo?", tools=[WEATHER], stream=True
            )
        )
        kinds = [event.type for event in events]
        assert "response.function_call_arguments.delta" in kinds
        assert "response.function_call_arguments.done" in kinds
        output = events[-1].response.output  # type: ignore[union-attr]
    else:
        output = client.responses.create(
            model="claude-sonnet-4", input="Weather in Oslo?", tools=[WEATHER]
        ).output
    calls = [item for item in output if item.type == "function_call"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert isinstance(json.loads(calls[0].arguments), dict)
    assert calls[0].call_id


def test_a_function_call_round_trip_is_translated_to_tool_use_and_tool_result(
    served: Served, mock: MockUpstreamThread
) -> None:
    client = openai_client(served, "sg-alice")
    client.responses.create(
        model="claude-sonnet-4",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        input=[
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "get_weather",
                "arguments": '{"city":"Oslo"}',
            },
            {"type": "function_call_output", "call_id": "c1", "output": "Snow"},
        ],
    )
    sent = last_upstream_body(mock)
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Oslo"}}
        ],
    }
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": "Snow"}
    ]
    assert sent["tools"][0]["input_schema"] == WEATHER["parameters"]
    assert sent["tool_choice"] == {"type": "tool", "name": "get_weather"}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"store": True}, "store"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        (
            {"input": [{"type": "web_search_call", "id": "ws_1", "status": "completed"}]},
            "input[0].type",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0]",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0]",
        ),
    ],
)
def test_what_anthropic_cannot_take_is_a_400_naming_the_field(
    served: Served, mock: MockUpstreamThread, extra: dict[str, object], param: str
) -> None:
    calls = mock.stats.total
    body = {"model": "claude-sonnet-4", "input": "Hi", **extra}
    reply = http("POST", served.url + "/v1/responses", json=body, authorization="Bearer sg-alice")
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == param
    assert "Anthropic" in error["message"]
    decision = stored(served, reply.headers["x-spendgate-decision-id"]).decision
    assert decision.status == "invalid_request"
    assert mock.stats.total == calls  # nothing was sent
    assert open_reservations(served) == 0


def test_a_json_format_needs_a_json_capable_model(served: Served) -> None:
    """claude-sonnet-4 lacks ``json``: the request is moved to a model that has it."""
    raw = openai_client(served, "sg-alice").responses.with_raw_response.create(
        model="claude-sonnet-4",
        input="Give me a JSON object.",
        text={"format": {"type": "json_object"}},
    )
    decision = stored(served, raw.headers["x-spendgate-decision-id"]).decision
    assert decision.target_model != "claude-sonnet-4"
    assert "requested_model_lacks_capability" in decision.reason_codes


# -- stateful requests ------------------------------------------------------------------------


def test_previous_response_id_is_passed_through_kept_on_its_provider_and_reserved_safely(
    smart: Served, mock: MockUpstreamThread
) -> None:
    client = openai_client(smart, "sg-alice")
    # Smart routing moves a simple prompt from gpt-4o (alpha) to the cheaper gpt-4o-mini
    # (beta): a plain request goes there.
    first = client.responses.with_raw_response.create(model="gpt-4o", input="Hi", store=False)
    assert first.headers["x-spendgate-model"] == "gpt-4o-mini"
    # Stored at alpha (store: true keeps it on gpt-4o's provider too).
    stored_raw = client.responses.with_raw_response.create(
        model="gpt-4o", input="Remember: the code word is teal.", store=True
    )
    assert stored_raw.headers["x-spendgate-model"] == "gpt-4o"
    earlier = stored_raw.parse()
    assert earlier.usage is not None
    before = _tokens(smart)
    raw = client.responses.with_raw_response.create(
        model="gpt-4o", input="Hi", previous_response_id=earlier.id
    )
    later = raw.parse()
    assert raw.headers["x-spendgate-model"] == "gpt-4o"  # not moved to beta
    assert last_upstream_body(mock)["previous_response_id"] == earlier.id
    decision = stored(smart, raw.headers["x-spendgate-decision-id"]).decision
    assert "stateful_passthrough" in decision.reason_codes
    sentence = next(s for s in decision.explanation if "previous_response_id" in s)
    assert "context window" in sentence
    assert decision.target_provider == "alpha"
    assert decision.fallbacks == ()  # failover may not move it either
    assert decision.estimate.input_tokens_upper == CONTEXT
    beta = next(c for c in decision.candidates if c.model == "gpt-4o-mini")
    assert not beta.eligible
    assert "state" in beta.reason
    # Settled on the provider's usage, which bills the earlier response again as input.
    assert later.usage is not None
    earlier_tokens = earlier.usage.input_tokens + earlier.usage.output_tokens
    assert later.usage.input_tokens > earlier_tokens
    assert decision.usage is not None
    assert decision.usage.input_tokens == later.usage.input_tokens
    assert _tokens(smart) - before == later.usage.total_tokens
    assert open_reservations(smart) == 0


def test_an_unknown_previous_response_is_the_providers_400(smart: Served) -> None:
    client = openai_client(smart, "sg-alice")
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model="gpt-4o", input="Hi", previous_response_id="resp_nope")
    assert "resp_nope" in str(caught.value)
    assert open_reservations(smart) == 0


# -- streams and input the gateway cannot read --------------------------------------------------


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4"])
def test_a_client_gone_mid_stream_pays_for_the_input_and_the_output_so_far(
    served: Served, mock: MockUpstreamThread, model: str
) -> None:
    body = {"model": model, "input": "Write at length.", "stream": True}
    mock.options.stream_chunks, mock.options.chunk_delay_ms = 100, 10
    disconnects = mock.stats.client_disconnects
    try:
        before = _tokens(served)
        decision_id = leave_stream(served, "/v1/responses", body, events=6)
        assert eventually(lambda: _tokens(served) > before and open_reservations(served) == 0)
    finally:
        mock.options.stream_chunks, mock.options.chunk_delay_ms = 5, 0
    record = stored(served, decision_id)
    decision = record.decision
    assert decision.status == "client_disconnected"
    assert record.usage_estimated is True
    assert decision.usage is not None
    assert 0 < decision.usage.output_tokens < 60  # the mock's answers are 30..90 tokens
    if model == "gpt-4o":  # no input count before the end: the input's upper bound
        assert decision.usage.input_tokens == decision.estimate.input_tokens_upper
    else:  # Anthropic's message_start gave the input count
        assert 0 < decision.usage.input_tokens < decision.estimate.input_tokens_upper
    assert _tokens(served) - before == decision.usage.total_tokens
    assert eventually(lambda: mock.stats.client_disconnects > disconnects)


def test_unknown_items_are_counted_never_free(served: Served) -> None:
    """An item type the gateway does not know is passed on, and its size is reserved."""
    blob = "x" * 4000
    known = {"model": "gpt-4o", "input": "Hi"}
    unknown = {
        "model": "gpt-4o",
        "input": [{"role": "user", "content": "Hi"}, {"type": "brand_new_item", "data": blob}],
    }
    uppers = []
    for body in (known, unknown):
        reply = http(
            "POST", served.url + "/v1/responses", json=body, authorization="Bearer sg-alice"
        )
        assert reply.status_code == 200, reply.text
        decision = stored(served, reply.headers["x-spendgate-decision-id"]).decision
        uppers.append(decision.estimate.input_tokens_upper)
    assert uppers[1] - uppers[0] >= len(blob)  # one token per byte at most
