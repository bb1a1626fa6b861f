"""``POST /v1/messages/count_tokens`` with the official Anthropic SDK: counted by the provider
when the model is on an Anthropic provider (the mock speaking Anthropic), else by the gateway's
estimate; the header ``x-spendgate-token-count`` says which. Free (nothing reserved, no
decision), but authenticated and scoped like every route."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from gateway_support import (
    HELLO,
    Served,
    anthropic_client,
    http,
    last_upstream_body,
    open_reservations,
    serve_config,
)
from serve_support import free_port
from spendgate.domain.requests import ChatRequest
from spendgate.domain.tokens import estimate_input_tokens
from spendgate.mock_upstream.runner import MockUpstreamThread
from spendgate.mock_upstream.textgen import MESSAGE_OVERHEAD, text_tokens

CONFIG = """
providers:
  - {{id: claude, kind: anthropic, base_url: "{mock}", api_key_env: CLAUDE_KEY}}
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: CLAUDE_KEY}}
  - {{id: down, kind: anthropic, base_url: "http://127.0.0.1:{dead}", api_key_env: CLAUDE_KEY}}
models:
  - {{id: claude-sonnet-4, provider: claude, upstream_id: claude-sonnet-4-20250514,
     cost_tier: high, max_output_tokens: 8192}}
  - {{id: gpt-4o-mini, provider: alpha, cost_tier: low, max_output_tokens: 16384}}
  - {{id: claude-down, provider: down, upstream_id: claude-sonnet-4, cost_tier: high}}
  - {{id: text-embedding-3-small, provider: alpha, capabilities: [embeddings]}}
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false, failover: false}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
  - {{id: limited, key_env: LIMITED_KEY, principal: bob, project: beta, models: [gpt-4o-mini]}}
budgets:
  - {{id: acme-requests, scope: {{kind: project, id: acme}}, metric: requests, interval: daily,
     hard_limit: 1}}
"""
ENV = {"CLAUDE_KEY": "sk-ant-upstream-secret", "ALICE_KEY": "sg-alice", "LIMITED_KEY": "sg-bob"}
COUNT = "/v1/messages/count_tokens"


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0) as mock:
        yield mock


@pytest.fixture(scope="module")
def served(mock: MockUpstreamThread) -> Iterator[Served]:
    with serve_config(CONFIG.format(mock=mock.base_url, dead=free_port()), ENV) as served:
        yield served


def test_a_model_on_an_anthropic_provider_is_counted_by_the_provider(
    served: Served, mock: MockUpstreamThread
) -> None:
    client = anthropic_client(served, "sg-alice")
    raw = client.messages.with_raw_response.count_tokens(
        model="claude-sonnet-4", system="Be brief.", messages=HELLO
    )
    assert raw.headers["x-spendgate-token-count"] == "provider"
    counted = raw.parse()
    # The mock's rule: two messages (system and user), each framed.
    expected = 2 * MESSAGE_OVERHEAD + text_tokens("Be brief.") + text_tokens(HELLO[0]["content"])
    assert counted.input_tokens == expected
    sent = last_upstream_body(mock)
    assert sent["model"] == "claude-sonnet-4-20250514"  # the upstream id
    assert "max_tokens" not in sent
    assert mock.stats.history[-1].path == COUNT
    # Free: nothing reserved, no decision, and no request counted against the budget.
    assert open_reservations(served) == 0
    assert "x-spendgate-decision-id" not in raw.headers


def test_other_models_are_counted_from_the_estimate(
    served: Served, mock: MockUpstreamThread
) -> None:
    sent = mock.stats.total
    messages = [{"role": "user", "content": "How many tokens is this?"}]
    raw = anthropic_client(served, "sg-alice").messages.with_raw_response.count_tokens(
        model="gpt-4o-mini", messages=messages
    )
    assert raw.headers["x-spendgate-token-count"] == "estimate"
    estimate = estimate_input_tokens(
        ChatRequest.from_anthropic({"model": "gpt-4o-mini", "max_tokens": 1, "messages": messages})
    )
    assert raw.parse().input_tokens == estimate.point
    assert int(raw.headers["x-spendgate-token-count-upper"]) == estimate.upper
    assert mock.stats.total == sent  # answered locally


def test_an_unreachable_anthropic_provider_falls_back_to_the_estimate(served: Served) -> None:
    raw = anthropic_client(served, "sg-alice").messages.with_raw_response.count_tokens(
        model="claude-down", messages=HELLO
    )
    assert raw.headers["x-spendgate-token-count"] == "estimate"
    assert raw.parse().input_tokens > 0


def test_counting_is_not_a_budgeted_request(served: Served) -> None:
    client = anthropic_client(served, "sg-alice")
    for _ in range(3):  # the project may make one request a day: counts are not requests
        client.messages.count_tokens(model="gpt-4o-mini", messages=HELLO)
    client.messages.create(model="gpt-4o-mini", max_tokens=5, messages=HELLO)


def test_unknown_model_is_a_404_in_anthropics_envelope(served: Served) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        anthropic_client(served, "sg-alice").messages.count_tokens(
            model="claude-nonexistent", messages=HELLO
        )
    assert "claude-nonexistent" in missing.value.message
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_auth_and_scoping_hold(served: Served, mock: MockUpstreamThread) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        anthropic_client(served, "sg-wrong").messages.count_tokens(
            model="gpt-4o-mini", messages=HELLO
        )
    sent = mock.stats.total
    with pytest.raises(anthropic.PermissionDeniedError):  # the key may not use that model
        anthropic_client(served, "sg-bob").messages.count_tokens(
            model="claude-sonnet-4", messages=HELLO
        )
    assert mock.stats.total == sent  # never reached the provider
    # Bearer works as well as x-api-key.
    reply = http(
        "POST",
        served.url + COUNT,
        json={"model": "gpt-4o-mini", "messages": HELLO},
        authorization="Bearer sg-bob",
    )
    assert reply.status_code == 200
    assert reply.json()["input_tokens"] > 0


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"messages": HELLO}, 400),
        ({"model": "gpt-4o-mini"}, 400),
        ({"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]}, 400),
        ({"model": "text-embedding-3-small", "messages": HELLO}, 400),
    ],
)
def test_malformed_counts_are_refused_in_anthropics_envelope(
    served: Served, body: dict[str, object], status: int
) -> None:
    reply = http("POST", served.url + COUNT, json=body, **{"x-api-key": "sg-alice"})
    assert reply.status_code == status
    assert reply.json()["type"] == "error"
    assert reply.json()["error"]["type"] == "invalid_request_error"


def test_a_provider_refusal_is_relayed(served: Served) -> None:
    reply = http(
        "POST",
        served.url + COUNT,
        # Valid for the gateway; the provider refuses a tool_choice naming no tool.
        json={
            "model": "claude-sonnet-4",
            "messages": HELLO,
            "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "missing"},
        },
        **{"x-api-key": "sg-alice"},
    )
    assert reply.status_code == 400
    assert reply.headers["x-spendgate-token-count"] == "provider"
    assert reply.json()["error"]["type"] == "invalid_request_error"
