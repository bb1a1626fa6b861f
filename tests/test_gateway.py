"""The gateway end to end: real HTTP on loopback, the official SDKs as clients, the mock
upstream as provider (an OpenAI-kind and an Anthropic-kind provider, both served by it)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import aiohttp
import anthropic
import openai
import orjson
import pytest

from gateway_support import HELLO, http, serve
from spendgate.config import parse_config
from spendgate.config.schema import DEFAULT_MAX_BODY_BYTES
from spendgate.domain.budgets import CounterKey
from spendgate.gateway.app import Gateway
from spendgate.gateway.compose import create_gateway
from spendgate.mock_upstream.runner import MockUpstreamThread

CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
  - {{id: beta, kind: anthropic, base_url: "{mock}", api_key_env: BETA_KEY}}
models:
  - {{id: gpt-4o-mini, provider: alpha, capabilities: [json, vision, tools], cost_tier: low,
     max_output_tokens: 16384}}
  - {{id: gpt-4o, provider: alpha, capabilities: [json, vision, tools], cost_tier: medium,
     max_output_tokens: 16384}}
  - {{id: claude-sonnet-4, provider: beta, capabilities: [vision, tools], cost_tier: medium,
     max_output_tokens: 8192}}
routing: {{default_model: gpt-4o, mode: enforced, smart_routing: false, failover: true}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
  - {{id: bob, key_env: BOB_KEY, principal: bob, project: acme}}
  - {{id: carol, key_env: CAROL_KEY, principal: carol, project: acme,
     permissions: [override_routing_mode]}}
budgets:
  - {{id: bob-cap, scope: {{kind: principal, id: bob}}, metric: usd, interval: daily,
     hard_limit: 0.05}}
"""
ENV = {
    "ALPHA_KEY": "sk-alpha-upstream",
    "BETA_KEY": "sk-beta-upstream",
    "ALICE_KEY": "sg-alice",
    "BOB_KEY": "sg-bob",
    "CAROL_KEY": "sg-carol",
}


@dataclass
class Running:
    gateway: Gateway
    url: str
    mock: MockUpstreamThread


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    with MockUpstreamThread(latency_ms=0) as mock:
        config = parse_config(CONFIG.format(mock=mock.base_url), "test.yaml")
        gateway = create_gateway(config, ENV)
        with serve(gateway) as url:
            yield Running(gateway, url, mock)


def client(running: Running, key: str = "sg-alice") -> openai.OpenAI:
    return openai.OpenAI(base_url=running.url + "/v1", api_key=key, max_retries=0)


def test_openai_sdk_completion_is_governed_and_priced(running: Running) -> None:
    raw = client(running).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO, max_tokens=100
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert raw.headers["x-spendgate-model"] == "gpt-4o"
    assert raw.headers["x-spendgate-routing-action"] == "proceed"
    assert raw.headers["x-spendgate-decision-id"]
    assert Decimal(raw.headers["x-spendgate-estimated-cost-usd"]) > 0


def test_openai_sdk_stream_passes_chunks_and_settles_usage(running: Running) -> None:
    ledger = running.gateway.governor.ledger
    stream = client(running).chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=50, stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text
    assert getattr(ledger, "open_reservations", 0) == 0


def test_openai_request_served_by_anthropic_provider(running: Running) -> None:
    completion = client(running).chat.completions.create(
        model="claude-sonnet-4", messages=HELLO, max_tokens=64
    )
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    assert running.mock.requests_by_path["/v1/messages"] >= 1


def test_anthropic_sdk_messages_and_stream(running: Running) -> None:
    sdk = anthropic.Anthropic(base_url=running.url, api_key="sg-alice", max_retries=0)
    message = sdk.messages.create(model="claude-sonnet-4", max_tokens=64, messages=HELLO)
    assert message.content[0].type == "text"
    assert message.usage.output_tokens > 0
    with sdk.messages.stream(model="gpt-4o", max_tokens=64, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
    assert text


def test_errors_follow_the_contract(running: Running) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(running, key="wrong").chat.completions.create(model="gpt-4o", messages=HELLO)
    with pytest.raises(openai.NotFoundError) as not_found:
        client(running).chat.completions.create(model="gpt-99", messages=HELLO)
    assert not_found.value.code == "model_not_found"
    auth = {"authorization": "Bearer sg-alice"}
    bad = http("POST", running.url + "/v1/chat/completions", content=b"{not json", **auth)
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    wrong_type = http(
        "POST",
        running.url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": "hi"},
        **auth,
    )
    assert wrong_type.status_code == 400
    assert wrong_type.json()["error"]["param"] == "messages"
    huge = http(
        "POST",
        running.url + "/v1/chat/completions",
        content=b"x" * (DEFAULT_MAX_BODY_BYTES + 1),
        **auth,
    )
    assert huge.status_code == 413
    bad_mode = http(
        "POST",
        running.url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": HELLO},
        **auth,
        **{"x-spendgate-routing-mode": "off"},
    )
    assert bad_mode.status_code == 400


def test_budget_block_is_429_and_the_sdk_does_not_retry(running: Running) -> None:
    sdk = openai.OpenAI(base_url=running.url + "/v1", api_key="sg-bob", max_retries=3)
    before = running.mock.requests_by_path["/v1/chat/completions"]
    with pytest.raises(openai.RateLimitError) as blocked:
        # The upper bound (16,384 output tokens of gpt-4o) exceeds bob's $0.05 at once.
        sdk.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert blocked.value.code == "budget_exceeded"
    assert blocked.value.response.headers["x-should-retry"] == "false"
    assert running.mock.requests_by_path["/v1/chat/completions"] == before


def test_models_lists_what_the_key_may_use(running: Running) -> None:
    models = {model.id for model in client(running).models.list()}
    assert models == {"gpt-4o-mini", "gpt-4o", "claude-sonnet-4"}


def test_concurrent_requests_never_overspend_a_hard_limit(running: Running) -> None:
    """200 simultaneous requests against a limit that admits only some: settled spend never
    exceeds it and no reservation is left open afterwards."""
    governor = running.gateway.governor
    key = CounterKey("bob-cap", "bob", _today_key())
    before = governor.ledger.read(key).settled

    async def burst() -> list[int]:
        body = orjson.dumps({"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 2000})
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(
            connector=connector, headers={"authorization": "Bearer sg-bob"}
        ) as session:

            async def one() -> int:
                async with session.post(
                    running.url + "/v1/chat/completions", data=body
                ) as response:
                    await response.read()
                    return response.status

            return list(await asyncio.gather(*(one() for _ in range(200))))

    statuses = asyncio.run(burst())
    admitted = statuses.count(200)
    assert 0 < admitted < 200
    assert set(statuses) <= {200, 429}
    state = governor.ledger.read(key)
    assert state.reserved == 0
    assert state.settled <= Decimal("0.05")
    assert state.settled > before


def _today_key() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")


def test_metrics_and_health(running: Running) -> None:
    metrics = http("GET", running.url + "/metrics").text
    assert "spendgate_requests_total" in metrics
    assert "sk-alpha-upstream" not in metrics
    health = http("GET", running.url + "/healthz").json()
    assert set(health["providers"]) == {"alpha", "beta"}
