"""The shape of a JSON body is bounded before it is decoded (``gateway.body``): a body of
millions of tiny values is refused before it costs hundreds of MB, one nested deeper than the
limit gets a 400 (it was a 500 when the body was re-encoded for the provider), and a long
prompt full of code still passes. Unit properties of the guard against a reference, then the
gateway over HTTP."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_support import Served, decisions, http, serve_config
from spendgate.gateway.body import MAX_JSON_DEPTH, JsonShapeError, check_json_shape
from spendgate.mock_upstream.runner import MockUpstreamThread

# -- the guard ------------------------------------------------------------------------------


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _values(value: Any) -> int:
    """The guard's count: containers, plus the commas between their elements, plus one."""

    def separators(value: Any) -> int:
        children = list(value.values()) if isinstance(value, dict) else value
        return 1 + max(len(children) - 1, 0) + sum(map(separators, _containers(children)))

    return 1 + (separators(value) if isinstance(value, dict | list) else 0)


def _containers(children: list[Any]) -> list[Any]:
    return [child for child in children if isinstance(child, dict | list)]


# Strings full of what could fool a scanner: brackets, commas, quotes and backslashes.
_TRICKY = st.text(alphabet='{}[],"\\:/nu x\n\u00e9', max_size=12)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TRICKY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TRICKY, inner, max_size=4),
    max_leaves=40,
)


@settings(max_examples=500, deadline=None)
@given(_JSON, st.integers(1, 8), st.integers(1, 60))
def test_guard_is_exact_on_any_document(value: Any, max_depth: int, max_values: int) -> None:
    expected = _depth(value) > max_depth or _values(value) > max_values
    for text in (json.dumps(value), json.dumps(value, indent=1, ensure_ascii=False)):
        refused = _reason(text.encode(), max_depth, max_values) is not None
        assert refused == expected, text


def _reason(body: bytes, max_depth: int, max_values: int) -> JsonShapeError | None:
    try:
        check_json_shape(body, max_depth=max_depth, max_values=max_values)
    except JsonShapeError as error:
        return error
    return None


def test_guard_bounds() -> None:
    nested = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    check_json_shape(nested)
    assert "deeper than 64" in str(_reason(b"[" + nested + b"]", MAX_JSON_DEPTH, 100_000))
    many = b"[" + b",".join([b"{}"] * 100_000) + b"]"
    assert "more than 100000 JSON values" in str(_reason(many, MAX_JSON_DEPTH, 100_000))
    # An escaped quote does not end a string: the brackets after it are text.
    check_json_shape(orjson.dumps({"code": '"\\' + "[" * 300 + "," * 200_000}))
    # ... and an escaped backslash before a quote does end it.
    with pytest.raises(JsonShapeError):
        check_json_shape(b'["\\\\",' + b"[" * 70 + b"]" * 70 + b"]")


# -- over HTTP ----------------------------------------------------------------------------------

CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
models:
  - {{id: gpt-4o, provider: alpha, cost_tier: medium, max_output_tokens: 1000,
     context_window: 1000000}}
routing: {{default_model: gpt-4o, mode: enforced, smart_routing: false, failover: false}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
"""
ENV = {"ALPHA_KEY": "sk-alpha", "ALICE_KEY": "sg-alice"}
AUTH = {"authorization": "Bearer sg-alice", "content-type": "application/json"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Any]]:
    with (
        MockUpstreamThread(latency_ms=0) as mock,
        serve_config(
            CONFIG.format(mock=mock.base_url),
            ENV,
            database=tmp_path_factory.mktemp("guard") / "journal.db",
        ) as served,
    ):
        yield served, mock


def _chat(messages: Any, **extra: Any) -> bytes:
    body = {"model": "gpt-4o", "max_tokens": 10, "messages": messages, **extra}
    return json.dumps(body).encode()  # orjson cannot encode the deepest of them


def test_millions_of_tiny_values_are_refused_before_decoding(
    gateway: tuple[Served, Any],
) -> None:
    served, mock = gateway
    calls = mock.stats.total
    bomb = b'{"model":"gpt-4o","messages":[' + b",".join([b"{}"] * 2_700_000) + b"]}"
    assert len(bomb) < 8 * 1024 * 1024
    tracemalloc.start()
    try:
        reply = http("POST", served.url + "/v1/chat/completions", content=bomb, **AUTH)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The body (8 MB) is read and scanned, never decoded into 2.7 million dicts (~700 MB).
    assert peak < 64 * 1024 * 1024, peak
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "more than 100000 JSON values" in error["message"]
    assert mock.stats.total == calls


@pytest.mark.parametrize("depth", [70, 300])
def test_deep_nesting_is_a_400(gateway: tuple[Served, Any], depth: int) -> None:
    served, mock = gateway
    calls = mock.stats.total
    nested: Any = "deep"
    for _ in range(depth):
        nested = [nested]
    body = _chat([{"role": "user", "content": "hi"}], metadata={"x": nested})
    reply = http("POST", served.url + "/v1/chat/completions", content=body, **AUTH)
    assert reply.status_code == 400, reply.text
    assert "deeper than 64" in reply.json()["error"]["message"]
    assert mock.stats.total == calls


def test_a_long_prompt_full_of_code_passes(gateway: tuple[Served, Any]) -> None:
    served, _ = gateway
    code = 'def f(x):\n    return {"a": [x, {"b": [1, 2, 3]}], "c": {}}  # ,,,\n' * 16_000
    assert len(code) > 1_000_000
    body = _chat([{"role": "user", "content": "Review this code:\n" + code}])
    reply = http("POST", served.url + "/v1/chat/completions", content=body, **AUTH)
    assert reply.status_code == 200, reply.text
    decision_id = reply.headers["x-spendgate-decision-id"]
    assert any(stored.decision.id == decision_id for stored in decisions(served))
