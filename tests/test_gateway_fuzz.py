"""Generated request bodies against a real gateway (Hypothesis): well-formed JSON with any value
in any field the proxy reads or forwards — on both routes, to a provider of the same protocol
and to one the request is translated for, streamed or not — never gets a 500. Every request
that got a decision finds it journaled, and nothing stays reserved."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_support import HELLO, Served, http, open_reservations, serve_config, stored
from spendgate.mock_upstream.runner import MockUpstreamThread

CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
  - {{id: beta, kind: anthropic, base_url: "{mock}", api_key_env: BETA_KEY}}
models:
  - {{id: gpt-4o-mini, provider: alpha, capabilities: [json, vision, tools], cost_tier: low,
     max_output_tokens: 16384}}
  - {{id: claude-sonnet-4, provider: beta, capabilities: [vision, tools], cost_tier: medium,
     max_output_tokens: 8192}}
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false, failover: true}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
budgets:
  - {{id: everything, scope: {{kind: global}}, metric: tokens, interval: daily,
     hard_limit: 100000000000}}
"""
ENV = {"ALPHA_KEY": "sk-alpha", "BETA_KEY": "sk-beta", "ALICE_KEY": "sg-alice"}
MODELS = ["gpt-4o-mini", "claude-sonnet-4"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)


def _maybe(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Some of ``fields``, each with its own strategy or any JSON value."""
    return st.fixed_dictionaries(
        {}, optional={key: strategy | json_values for key, strategy in fields.items()}
    )


def _part(types: list[str], fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda kind, rest: {"type": kind, **rest},
        st.sampled_from(types) | json_values,
        _maybe(dict.fromkeys(fields, json_values)),
    )


_OPENAI_PART = _part(
    ["text", "image_url", "input_audio", "file", "refusal", "input_text"],
    ["text", "image_url", "input_audio", "file", "refusal"],
)
_ANTHROPIC_BLOCK = _part(
    ["text", "image", "tool_use", "tool_result", "document", "thinking", "server_tool_use"],
    ["text", "source", "id", "name", "input", "tool_use_id", "content", "is_error", "thinking"],
)


_TOOL_CALL = _maybe(
    {
        "id": st.text(max_size=5),
        "type": st.just("function"),
        "function": _maybe({"name": st.text(max_size=5), "arguments": st.text(max_size=10)}),
    }
)


def _message(roles: list[str], part: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    content = st.text(max_size=20) | st.lists(part, max_size=3) | json_values
    return st.builds(
        lambda role, content, rest: {"role": role, "content": content, **rest},
        st.sampled_from(roles) | json_values,
        content,
        _maybe(
            {
                "name": st.text(max_size=5),
                "tool_calls": st.lists(_TOOL_CALL, max_size=2),
                "tool_call_id": st.text(max_size=5),
            }
        ),
    )


_TOOLS = st.lists(
    _maybe({"type": st.just("function"), "function": _maybe({"name": st.text(max_size=5),
            "parameters": json_values}), "name": st.text(max_size=5),
            "input_schema": json_values}),
    max_size=2,
)  # fmt: skip

openai_bodies = st.builds(
    lambda model, messages, rest: {"model": model, "messages": messages, **rest},
    st.sampled_from(MODELS),
    st.just(HELLO) | st.lists(_message(["user", "assistant", "system", "tool", "developer"],
                                       _OPENAI_PART), min_size=1, max_size=3),
    _maybe({
        "max_tokens": st.integers(1, 50), "max_completion_tokens": st.integers(1, 50),
        "stream": st.booleans(), "stream_options": _maybe({"include_usage": st.booleans()}),
        "n": st.integers(1, 2), "tools": _TOOLS, "functions": _TOOLS,
        "tool_choice": st.sampled_from(["auto", "none", "required"]),
        "response_format": _maybe({"type": st.sampled_from(["text", "json_object"])}),
        "stop": st.text(max_size=5), "temperature": st.floats(0, 2), "top_p": st.floats(0, 1),
        "seed": st.integers(0, 10), "user": st.text(max_size=5), "metadata": json_values,
        "logprobs": st.booleans(), "parallel_tool_calls": st.booleans(),
    }),
)  # fmt: skip

anthropic_bodies = st.builds(
    lambda model, max_tokens, messages, rest: {
        "model": model, "max_tokens": max_tokens, "messages": messages, **rest
    },
    st.sampled_from(MODELS),
    st.integers(1, 50),
    st.just(HELLO) | st.lists(_message(["user", "assistant"], _ANTHROPIC_BLOCK),
                              min_size=1, max_size=3),
    _maybe({
        "system": st.text(max_size=10) | st.lists(_ANTHROPIC_BLOCK, max_size=2),
        "stream": st.booleans(), "tools": _TOOLS,
        "tool_choice": _maybe({"type": st.sampled_from(["auto", "any", "tool", "none"]),
                               "name": st.text(max_size=5)}),
        "stop_sequences": st.lists(st.text(max_size=5), max_size=2),
        "temperature": st.floats(0, 1), "top_k": st.integers(1, 5), "top_p": st.floats(0, 1),
        "metadata": json_values, "thinking": json_values,
    }),
)  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    database: Path = tmp_path_factory.mktemp("fuzz") / "journal.db"
    with (
        MockUpstreamThread(latency_ms=0, history=0, output_tokens=8) as mock,
        serve_config(CONFIG.format(mock=mock.base_url), ENV, database=database) as served,
    ):
        yield served


def _check(served: Served, path: str, body: dict[str, Any]) -> None:
    reply = http(
        "POST",
        served.url + path,
        json=body,
        authorization="Bearer sg-alice",
        **{"content-type": "application/json"},
    )
    assert reply.status_code != 500, (body, reply.text)
    assert reply.status_code in (200, 400, 403, 404, 429, 502), (body, reply.text)
    decision_id = reply.headers.get("x-spendgate-decision-id")
    if decision_id is None and reply.status_code != 200:
        error = reply.json()
        decision_id = error.get("decision_id")
    if decision_id is not None:
        assert stored(served, decision_id).decision.status is not None
    assert open_reservations(served) == 0


_FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_FUZZ
@given(body=openai_bodies)
def test_generated_openai_bodies_never_get_a_500(served: Served, body: dict[str, Any]) -> None:
    _check(served, "/v1/chat/completions", body)


@_FUZZ
@given(body=anthropic_bodies)
def test_generated_anthropic_bodies_never_get_a_500(served: Served, body: dict[str, Any]) -> None:
    _check(served, "/v1/messages", body)
