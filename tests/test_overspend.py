"""Settled spend never exceeds a hard limit (issue 8, items 1 and 2), end to end.

A hard USD limit per session, several concurrent requests through a real gateway to the real
mock upstream, on both client APIs and both provider kinds, streamed and not, with and without
``max_tokens``, with plain text and with documents / files. The mock answers at length when no
limit is given (far beyond the model's ceiling), honours the limit it is sent, and bills a
document by the text it carries, as a provider would: so a ceiling reserved but not sent, or
input the estimate skipped, shows up as settled spend above the limit.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from gateway_support import (
    Served,
    counter,
    eventually,
    last_upstream_body,
    open_reservations,
    serve_config,
    stored,
)
from spendgate.mock_upstream.runner import MockUpstreamThread

CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: UPSTREAM_KEY}}
  - {{id: beta, kind: anthropic, base_url: "{mock}", api_key_env: UPSTREAM_KEY}}
models:
  - {{id: gpt-x, provider: alpha, cost_tier: medium, context_window: 32000,
     max_output_tokens: 4000}}
  - {{id: claude-x, provider: beta, cost_tier: medium, context_window: 32000,
     max_output_tokens: 4000}}
  # gpt-4o-mini's prices and context window, for the 400 KB document.
  - {{id: claude-big, provider: beta, cost_tier: low, context_window: 200000,
     max_output_tokens: 4000}}
pricing:
  - {{model: claude-big, input_per_mtok: 0.15, output_per_mtok: 0.60}}
  - {{model: gpt-x, input_per_mtok: 1, output_per_mtok: 10}}
  - {{model: claude-x, input_per_mtok: 1, output_per_mtok: 10}}
routing: {{default_model: gpt-x, mode: enforced, smart_routing: false, failover: false}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
  - {{id: carol, key_env: CAROL_KEY, principal: carol, project: acme,
     permissions: [override_routing_mode]}}
budgets:
  # Each test runs in its own session, so each starts from an empty $0.10.
  - {{id: per-session, scope: {{kind: session, id: "*"}}, metric: usd, interval: daily,
     hard_limit: 0.10}}
"""
ENV = {"UPSTREAM_KEY": "sk-upstream", "ALICE_KEY": "sg-alice", "CAROL_KEY": "sg-carol"}
LIMIT = Decimal("0.10")
# A request reserves $0.04 of output (4,000 tokens at $10/M): two fit under the limit, and a
# document of ~20,000 tokens ($0.02) leaves room for one only.
MODEL_MAX = 4000
CONCURRENT = 4
# English-like text: the mock bills 4 bytes a token, 20,000 tokens for 80 KB.
DOCUMENT_TEXT = ("The quarterly ledger shows steady spend across every project. " * 1300)[:80_000]
# A "PDF" of 60 KB: 80,000 base64 characters, which the mock bills as 20,000 tokens.
PDF_BASE64 = base64.b64encode(b"%PDF-1.7\n" + bytes(range(256)) * 234).decode()

# max_tokens: absent (OpenAI only: Anthropic requires it), within the model's maximum, above it.
OPENAI_LIMITS = [None, MODEL_MAX, 50_000]
ANTHROPIC_LIMITS = [MODEL_MAX, 50_000]


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    # Unlimited answers run 10,000-30,000 tokens ($0.10-0.30): far above any ceiling here.
    with MockUpstreamThread(latency_ms=30, output_tokens=20_000, history=400) as mock:
        yield mock


@pytest.fixture(scope="module")
def served(mock: MockUpstreamThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    database: Path = tmp_path_factory.mktemp("overspend") / "journal.db"
    with serve_config(CONFIG.format(mock=mock.base_url), ENV, database=database) as served:
        yield served


def _openai_body(model: str, document: bool, max_tokens: int | None, stream: bool) -> Any:
    content: Any = "Summarise our spend in a long report."
    if document:
        content = [
            {"type": "text", "text": "Summarise this report."},
            {
                "type": "file",
                "file": {
                    "filename": "report.pdf",
                    "file_data": "data:application/pdf;base64," + PDF_BASE64,
                },
            },
        ]
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "stream": stream,
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


def _anthropic_body(model: str, document: bool, max_tokens: int, stream: bool) -> Any:
    content: Any = "Summarise our spend in a long report."
    if document:
        content = [
            {
                "type": "document",
                "title": "Quarterly ledger",
                "source": {"type": "text", "media_type": "text/plain", "data": DOCUMENT_TEXT},
            },
            {"type": "text", "text": "Summarise this report."},
        ]
    return {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": content}],
        "stream": stream,
    }


async def _post_all(url: str, body: Any, headers: dict[str, str], count: int) -> list[int]:
    """``count`` identical requests at once; each answer is read to its end."""
    async with aiohttp.ClientSession() as session:

        async def one() -> int:
            async with session.post(url, data=orjson.dumps(body), headers=headers) as response:
                await response.read()
                return response.status

        return list(await asyncio.gather(*(one() for _ in range(count))))


CASES = [
    pytest.param(api, model, stream, document, max_tokens, id=f"{api}-{model}-{s}-{d}-{m}")
    for api, limits in (("openai", OPENAI_LIMITS), ("anthropic", ANTHROPIC_LIMITS))
    for model in ("gpt-x", "claude-x")
    for stream, s in ((False, "json"), (True, "sse"))
    for document, d in ((False, "text"), (True, "document"))
    for max_tokens, m in ((limit, f"max{limit}") for limit in limits)
]


@pytest.mark.parametrize(("api", "model", "stream", "document", "max_tokens"), CASES)
def test_concurrent_requests_never_settle_above_the_hard_limit(
    served: Served, api: str, model: str, stream: bool, document: bool, max_tokens: int | None
) -> None:
    session = uuid.uuid4().hex
    if api == "openai":
        url = served.url + "/v1/chat/completions"
        body = _openai_body(model, document, max_tokens, stream)
        headers = {"authorization": "Bearer sg-alice"}
    else:
        assert max_tokens is not None
        url = served.url + "/v1/messages"
        body = _anthropic_body(model, document, max_tokens, stream)
        headers = {"x-api-key": "sg-alice"}
    headers |= {"content-type": "application/json", "x-spendgate-session-id": session}

    statuses = asyncio.run(_post_all(url, body, headers, CONCURRENT))

    assert set(statuses) <= {200, 429}, statuses
    assert 200 in statuses, "the limit must leave room for at least one request"
    member = f"project:acme/{session}"  # session ids are members within the key's project
    assert eventually(lambda: counter(served, "per-session", member).reserved == 0)
    spent = counter(served, "per-session", member).settled
    assert 0 < spent <= LIMIT, f"settled ${spent} against a ${LIMIT} hard limit"
    assert open_reservations(served) == 0


ROUTES = [
    # client API, model, the limit the client sent, what the provider must receive, and
    # whether the gateway changed it (the decision says so)
    pytest.param("openai", "gpt-x", {}, {"max_completion_tokens": MODEL_MAX}, True, id="oa"),
    pytest.param(
        "openai",
        "gpt-x",
        {"max_tokens": 50_000},
        {"max_tokens": MODEL_MAX, "max_completion_tokens": None},
        True,
        id="oa-clamp-max_tokens",
    ),
    pytest.param(
        "openai",
        "gpt-x",
        {"max_completion_tokens": 50_000},
        {"max_completion_tokens": MODEL_MAX, "max_tokens": None},
        True,
        id="oa-clamp-max_completion_tokens",
    ),
    pytest.param(
        "openai",
        "gpt-x",
        {"max_tokens": 100},
        {"max_tokens": 100, "max_completion_tokens": None},
        False,
        id="oa-within",
    ),
    pytest.param("openai", "claude-x", {}, {"max_tokens": MODEL_MAX}, True, id="oa-to-an"),
    pytest.param(
        "anthropic", "claude-x", {"max_tokens": 50_000}, {"max_tokens": MODEL_MAX}, True, id="an"
    ),
    pytest.param(
        "anthropic",
        "gpt-x",
        {"max_tokens": 50_000},
        {"max_completion_tokens": MODEL_MAX, "max_tokens": None},
        True,
        id="an-to-oa",
    ),
]


@pytest.mark.parametrize(("api", "model", "limit", "expected", "applied"), ROUTES)
def test_the_provider_is_sent_the_reserved_ceiling_and_the_decision_says_so(
    served: Served,
    mock: MockUpstreamThread,
    api: str,
    model: str,
    limit: dict[str, int],
    expected: dict[str, int | None],
    applied: bool,
) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "Say hello."}], **limit}
    path = "/v1/chat/completions" if api == "openai" else "/v1/messages"

    status, decision_id = _post(served, path, body)

    assert status == 200
    sent = last_upstream_body(mock)
    assert {field: sent.get(field) for field in expected} == expected
    ceiling = next(value for value in expected.values() if value is not None)
    decision = stored(served, decision_id).decision
    assert decision.estimate.output_tokens_upper == ceiling
    assert ("output_ceiling_applied" in decision.reason_codes) is applied
    assert any(f"limit of {ceiling}" in sentence for sentence in decision.explanation) is applied


def _post(served: Served, path: str, body: Any) -> tuple[int, str]:
    """One request in a session of its own: its status and decision id (from the error body
    when refused)."""
    auth = (
        {"authorization": "Bearer sg-alice"}
        if path.endswith("completions")
        else {"x-api-key": "sg-alice"}
    )
    headers = {"content-type": "application/json", "x-spendgate-session-id": uuid.uuid4().hex}

    async def post() -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(served.url + path, data=orjson.dumps(body), headers=headers | auth) as r,
        ):
            data = await r.read()
            if r.status != 200:
                decision_id = orjson.loads(data)["error"]["decision_id"]
                assert r.headers["x-spendgate-decision-id"] == decision_id  # errors too
                return r.status, decision_id
            return r.status, r.headers["x-spendgate-decision-id"]

    return asyncio.run(post())


def test_a_lowered_ceiling_lowers_an_anthropic_thinking_budget_with_it(
    served: Served, mock: MockUpstreamThread
) -> None:
    body = _anthropic_body("claude-x", False, 50_000, False)
    body["thinking"] = {"type": "enabled", "budget_tokens": 20_000}

    status, _ = _post(served, "/v1/messages", body)

    assert status == 200
    sent = last_upstream_body(mock)
    assert sent["max_tokens"] == MODEL_MAX
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": MODEL_MAX - 1}


@pytest.mark.parametrize("mode", ["dry_run", "suggest"])
def test_modes_that_change_nothing_send_the_request_as_asked(
    served: Served, mock: MockUpstreamThread, mode: str
) -> None:
    body = _openai_body("gpt-x", False, 50_000, False)
    headers = {
        "authorization": "Bearer sg-carol",
        "content-type": "application/json",
        "x-spendgate-routing-mode": mode,
        "x-spendgate-session-id": uuid.uuid4().hex,
    }

    statuses = asyncio.run(_post_all(served.url + "/v1/chat/completions", body, headers, 1))

    assert statuses == [200]
    sent = last_upstream_body(mock)
    assert (sent["max_tokens"], sent.get("max_completion_tokens")) == (50_000, None)


def test_a_400_kb_text_document_is_reserved_at_its_real_cost_or_more(served: Served) -> None:
    """The issue's reproduction: 400 KB of text in a document part was reserved at $0.000007
    (the part skipped) instead of about $0.0155."""
    text = (DOCUMENT_TEXT * 5)[:400_000]
    body = _anthropic_body("claude-big", False, 100, False)
    body["messages"][0]["content"] = [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}},
        {"type": "text", "text": "Summarise this report."},
    ]

    status, decision_id = _post(served, "/v1/messages", body)

    assert status == 200
    decision = stored(served, decision_id).decision
    assert decision.usage is not None
    assert decision.actual_cost_usd is not None
    billed = decision.usage.input_tokens  # the mock bills 4 bytes a token: ~100,000
    assert billed > 100_000
    assert billed <= decision.estimate.input_tokens_upper <= 1.6 * billed
    reserved = decision.estimate.upper_usd
    assert reserved is not None
    assert decision.actual_cost_usd <= reserved
    assert Decimal("0.0155") < reserved < Decimal("0.03")


def test_a_message_name_is_reserved_too(served: Served) -> None:
    """A message's ``name`` is read (and billed) by the model: 80 KB of it must be reserved,
    not skipped as fields other than ``content`` once were."""
    body = _openai_body("gpt-x", False, 100, False)
    body["messages"][0]["name"] = DOCUMENT_TEXT.replace(" ", "_")

    status, decision_id = _post(served, "/v1/chat/completions", body)

    assert status == 200
    decision = stored(served, decision_id).decision
    assert decision.usage is not None
    billed = decision.usage.input_tokens  # the mock bills 4 bytes a token: ~20,000
    assert billed > 19_000
    assert billed <= decision.estimate.input_tokens_upper


def test_a_file_known_only_by_id_reserves_the_context_window(served: Served) -> None:
    body = _openai_body("gpt-x", False, 100, False)
    body["messages"][0]["content"] = [
        {"type": "text", "text": "Summarise this report."},
        {"type": "file", "file": {"file_id": "file-abc123"}},
    ]

    status, decision_id = _post(served, "/v1/chat/completions", body)

    assert status == 200
    decision = stored(served, decision_id).decision
    assert decision.estimate.input_tokens_upper == 32_000
    assert "input_size_unknown" in decision.reason_codes
    assert any("context window of 32000" in sentence for sentence in decision.explanation)


def test_a_file_the_routed_provider_cannot_read_is_a_400_that_reserves_nothing(
    served: Served, mock: MockUpstreamThread
) -> None:
    """An OpenAI file id means nothing to an Anthropic provider: refused as bad input (it
    was a 500), the reservation released, the provider never called."""
    body = _openai_body("claude-x", False, 100, False)
    body["messages"][0]["content"] = [{"type": "file", "file": {"file_id": "file-abc123"}}]
    calls = mock.stats.total

    status, decision_id = _post(served, "/v1/chat/completions", body)

    assert status == 400
    assert mock.stats.total == calls
    assert open_reservations(served) == 0
    assert stored(served, decision_id).decision.status == "invalid_request"


FAILOVER_CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{alpha}/v1", api_key_env: UPSTREAM_KEY}}
  - {{id: beta, kind: anthropic, base_url: "{beta}", api_key_env: UPSTREAM_KEY}}
models:
  - {{id: gpt-x, provider: alpha, cost_tier: medium, max_output_tokens: 4000}}
  - {{id: claude-x, provider: beta, cost_tier: medium, max_output_tokens: 1000}}
routing: {{default_model: gpt-x, mode: enforced, smart_routing: false, failover: true}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
"""


def test_each_failover_target_is_sent_its_own_models_ceiling(tmp_path: Path) -> None:
    with (
        MockUpstreamThread(latency_ms=0, forced_status=500) as alpha,
        MockUpstreamThread(latency_ms=0) as beta,
    ):
        config = FAILOVER_CONFIG.format(alpha=alpha.base_url, beta=beta.base_url)
        with serve_config(config, ENV, database=tmp_path / "journal.db") as served:
            body = {"model": "gpt-x", "messages": [{"role": "user", "content": "Say hello."}]}

            status, decision_id = _post(served, "/v1/chat/completions", body)

            assert status == 200
            assert last_upstream_body(alpha)["max_completion_tokens"] == 4000
            assert last_upstream_body(beta)["max_tokens"] == 1000
            decision = stored(served, decision_id).decision
            assert decision.actual_model == "claude-x"
            assert decision.estimate.output_tokens_upper == 1000
            assert any("limit of 1000 output tokens" in s for s in decision.explanation)
