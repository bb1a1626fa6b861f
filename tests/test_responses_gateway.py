"""``POST /v1/responses`` through a served gateway to an OpenAI-kind provider (the mock), with
the official ``openai`` SDK as the client: plain, streamed and with a function-tool round trip,
each metered, journaled and priced exactly (cached input at the cached rate, reasoning tokens
as output), and each blocked by a budget with a 429 the SDK does not retry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import pytest

from gateway_support import (
    Served,
    counter,
    eventually,
    http,
    inject_mock_headers,
    last_upstream_body,
    open_reservations,
    openai_client,
    serve_config,
    stored,
)
from spendgate.mock_upstream.responses_api import REASONING_TOKENS
from spendgate.mock_upstream.runner import MockUpstreamThread

CACHED = 7  # input tokens the mock reports read from cache
CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
models:
  - {{id: gpt-4o-mini, provider: alpha, cost_tier: low, max_output_tokens: 16384,
     context_window: 128000, capabilities: [tools, json, vision]}}
pricing:
  - {{model: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.60,
     cached_input_per_mtok: 0.075}}
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false, failover: false}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
  - {{id: bob, key_env: BOB_KEY, principal: bob, project: poor}}
  - {{id: carol, key_env: CAROL_KEY, principal: carol, project: once}}
budgets:
  - {{id: acme-usd, scope: {{kind: project, id: acme}}, metric: usd, interval: daily,
     hard_limit: 100}}
  - {{id: poor-tokens, scope: {{kind: project, id: poor}}, metric: tokens, interval: daily,
     hard_limit: 50}}
  - {{id: once-requests, scope: {{kind: project, id: once}}, metric: requests,
     interval: daily, hard_limit: 1}}
"""
ENV = {
    "ALPHA_KEY": "sk-alpha",
    "ALICE_KEY": "sg-alice",
    "BOB_KEY": "sg-bob",
    "CAROL_KEY": "sg-carol",
}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    mock = MockUpstreamThread(latency_ms=0, stream_chunks=6)
    inject_mock_headers(mock, {"x-mock-cached-tokens": str(CACHED)})
    with mock:
        yield mock


@pytest.fixture
def served(mock: MockUpstreamThread, tmp_path: Path) -> Iterator[Served]:
    with serve_config(
        CONFIG.format(mock=mock.base_url), ENV, database=tmp_path / "journal.db"
    ) as served:
        yield served


def price(input_tokens: int, cached: int, output_tokens: int) -> Decimal:
    """USD at the configured prices: cached input at its own rate, the rest at the input rate."""
    return (
        (input_tokens - cached) * Decimal("0.15")
        + cached * Decimal("0.075")
        + output_tokens * Decimal("0.60")
    ) / Decimal(1_000_000)


def test_a_plain_response_is_metered_priced_and_journaled(
    served: Served, mock: MockUpstreamThread
) -> None:
    client = openai_client(served, "sg-alice")
    raw = client.responses.with_raw_response.create(
        model="gpt-4o-mini",
        instructions="Answer briefly.",
        input="Say hello to the budget team.",
        reasoning={"effort": "low"},
    )
    response = raw.parse()
    assert response.output_text
    assert response.usage is not None
    usage = response.usage
    assert usage.input_tokens_details.cached_tokens == CACHED
    assert usage.output_tokens_details.reasoning_tokens == REASONING_TOKENS["low"]
    # The provider got its own model id at /v1/responses, held to the reserved ceiling.
    sent = last_upstream_body(mock)
    assert mock.stats.history[-1].path == "/v1/responses"
    assert sent["max_output_tokens"] == 16384
    decision = stored(served, raw.headers["x-spendgate-decision-id"]).decision
    assert decision.status == "ok"
    assert decision.usage is not None
    assert decision.usage.input_tokens == usage.input_tokens
    assert decision.usage.cached_input_tokens == CACHED
    assert decision.usage.output_tokens == usage.output_tokens  # reasoning included
    expected = price(usage.input_tokens, CACHED, usage.output_tokens)
    assert decision.actual_cost_usd == expected
    assert counter(served, "acme-usd", "acme").settled == expected
    assert raw.headers["x-spendgate-model"] == "gpt-4o-mini"
    assert open_reservations(served) == 0


def test_a_streamed_response_ends_with_its_usage_and_is_settled_on_it(served: Served) -> None:
    client = openai_client(served, "sg-alice")
    stream = client.responses.create(
        model="gpt-4o-mini", input=[{"role": "user", "content": "Tell me a story."}], stream=True
    )
    kinds = []
    text = []
    final = None
    for event in stream:
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            text.append(event.delta)
        elif event.type == "response.completed":
            final = event.response
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert final is not None
    assert final.usage is not None
    assert "".join(text) == final.output_text
    decision_id = stream.response.headers["x-spendgate-decision-id"]
    decision = stored(served, decision_id).decision
    assert decision.status == "ok"
    assert decision.usage is not None
    assert decision.usage.output_tokens == final.usage.output_tokens
    assert decision.actual_cost_usd == price(
        final.usage.input_tokens, CACHED, final.usage.output_tokens
    )
    assert eventually(lambda: open_reservations(served) == 0)


def test_a_function_tool_round_trip(served: Served) -> None:
    client = openai_client(served, "sg-alice")
    first = client.responses.create(
        model="gpt-4o-mini", input="What is the weather in Paris?", tools=[WEATHER]
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert "city" in json.loads(calls[0].arguments)
    second = client.responses.with_raw_response.create(
        model="gpt-4o-mini",
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "type": "function_call",
                "call_id": calls[0].call_id,
                "name": calls[0].name,
                "arguments": calls[0].arguments,
            },
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny, 21C"},
        ],
    )
    answer = second.parse()
    assert answer.output_text  # the result was read: a text answer this time
    decision = stored(served, second.headers["x-spendgate-decision-id"]).decision
    assert decision.usage is not None
    assert decision.usage.input_tokens == answer.usage.input_tokens


def test_a_budget_blocks_responses_and_the_sdk_does_not_retry(
    served: Served, mock: MockUpstreamThread
) -> None:
    client = openai_client(served, "sg-bob", max_retries=3)
    before = mock.stats.requests_by_path["/v1/responses"]
    for stream in (False, True):
        with pytest.raises(openai.RateLimitError) as caught:
            client.responses.create(model="gpt-4o-mini", input="Write a long essay.", stream=stream)
        assert caught.value.code == "budget_exceeded"
        assert caught.value.response.headers["x-should-retry"] == "false"
        decision_id = caught.value.response.headers["x-spendgate-decision-id"]
        assert stored(served, decision_id).decision.routing_action.value == "block"
    assert mock.stats.requests_by_path["/v1/responses"] == before  # never sent upstream


def _respond(client: openai.OpenAI, kind: str) -> str:
    """One Responses call of ``kind`` (read to its end); its decision id."""
    if kind == "streamed":
        with client.responses.with_streaming_response.create(
            model="gpt-4o-mini", input="Hello there.", stream=True
        ) as raw:
            for _ in raw.iter_lines():
                pass
            return raw.headers["x-spendgate-decision-id"]
    tools = [WEATHER] if kind == "tools" else []
    raw = client.responses.with_raw_response.create(
        model="gpt-4o-mini", input="Weather in Rome?", tools=tools
    )
    return raw.headers["x-spendgate-decision-id"]


@pytest.mark.parametrize("kind", ["plain", "streamed", "tools"])
def test_each_kind_of_response_counts_against_a_budget_and_is_then_blocked(
    served: Served, kind: str
) -> None:
    client = openai_client(served, "sg-carol", max_retries=2)
    first = stored(served, _respond(client, kind)).decision
    assert first.status == "ok"
    assert first.usage is not None
    assert first.usage.output_tokens > 0
    assert counter(served, "once-requests", "once").settled == 1
    with pytest.raises(openai.RateLimitError) as caught:
        _respond(client, kind)
    assert caught.value.code == "budget_exceeded"
    assert counter(served, "once-requests", "once").settled == 1
    assert open_reservations(served) == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt-4o-mini"}, "input"),
        ({"model": "gpt-4o-mini", "input": 3}, "input"),
        (
            {
                "model": "gpt-4o-mini",
                "input": [{"type": "message", "role": "robot", "content": "x"}],
            },
            "input[0].role",
        ),
        (
            {"model": "gpt-4o-mini", "input": [{"type": "function_call", "name": "f"}]},
            "input[0].arguments",
        ),
        ({"model": "gpt-4o-mini", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "gpt-4o-mini", "input": "x", "text": {"format": "json"}}, "text.format.type"),
        ({"model": "gpt-4o-mini", "input": "x", "background": True}, "background"),
        ({"model": "gpt-4o-mini", "input": "x", "temperature": 3}, "temperature"),
        ({"model": "gpt-4o-mini", "input": "x", "previous_response_id": 5}, "previous_response_id"),
    ],
)
def test_malformed_bodies_get_a_400_naming_the_param(
    served: Served, body: dict[str, object], param: str
) -> None:
    reply = http("POST", served.url + "/v1/responses", json=body, authorization="Bearer sg-alice")
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert open_reservations(served) == 0


def test_get_is_not_allowed_on_the_route(served: Served) -> None:
    reply = http("GET", served.url + "/v1/responses", authorization="Bearer sg-alice")
    assert reply.status_code == 405
