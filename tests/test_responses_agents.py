"""The OpenAI Agents SDK's default path through the gateway: ``Runner.run`` calls
``/v1/responses`` (its default model API), the agent calls a function tool, gets the result
and answers; every model call is governed and journaled. Tracing is off, so nothing leaves
loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from agents import (
    Agent,
    Runner,
    function_tool,
    set_default_openai_client,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from gateway_support import Served, decisions, eventually, open_reservations, serve_config
from spendgate.mock_upstream.runner import MockUpstreamThread

CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: UPSTREAM_KEY}}
models:
  - {{id: gpt-4o-mini, provider: alpha, cost_tier: low, capabilities: [tools, json]}}
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false, failover: false}}
keys:
  - {{id: agent, key_env: AGENT_KEY, principal: bot, project: agents}}
budgets:
  - {{id: agents-tokens, scope: {{kind: project, id: agents}}, metric: tokens,
     interval: daily, hard_limit: 1000000}}
"""
ENV = {"UPSTREAM_KEY": "sk-upstream", "AGENT_KEY": "sg-agent"}
looked_up: list[str] = []


@function_tool
def lookup_order(order_id: str) -> str:
    """Look up an order's status by its id."""
    looked_up.append(order_id)
    return f"Order {order_id} shipped yesterday."


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Served, MockUpstreamThread]]:
    with (
        MockUpstreamThread(latency_ms=0) as mock,
        serve_config(
            CONFIG.format(mock=mock.base_url), ENV, database=tmp_path / "journal.db"
        ) as served,
    ):
        yield served, mock


def test_an_agent_with_a_function_tool_runs_through_the_gateway(
    served: tuple[Served, MockUpstreamThread],
) -> None:
    gateway, mock = served
    set_tracing_disabled(True)
    set_default_openai_client(
        AsyncOpenAI(base_url=gateway.url + "/v1", api_key="sg-agent", max_retries=0),
        use_for_tracing=False,
    )
    agent = Agent(
        name="Support",
        instructions="Answer questions about orders; look them up first.",
        model="gpt-4o-mini",
        tools=[lookup_order],
    )
    looked_up.clear()
    result = asyncio.run(Runner.run(agent, "Where is my order 42?"))
    assert result.final_output  # the agent finished with a text answer
    assert len(looked_up) == 1  # the tool ran once, its result went back to the model
    # Both model calls went through /v1/responses, governed and journaled.
    assert mock.stats.requests_by_path["/v1/responses"] == 2
    assert "/v1/chat/completions" not in mock.stats.requests_by_path
    journaled = [d.decision for d in decisions(gateway)]
    assert len(journaled) == 2
    assert all(d.status == "ok" and d.usage is not None for d in journaled)
    # The second call carried the tool's result back: it has the larger input.
    inputs = sorted(d.usage.input_tokens for d in journaled if d.usage is not None)
    assert inputs[0] < inputs[1]
    assert eventually(lambda: open_reservations(gateway) == 0)
