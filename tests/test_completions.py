"""Legacy ``POST /v1/completions`` through a served gateway, the official OpenAI SDK as the
client: planned, reserved (``max_tokens``, 16 by default, × ``best_of`` × prompts), passed
through to OpenAI-kind providers only, settled from the provider's usage, streamed with the
usage chunk the gateway asked for filtered out, and charged for what was streamed when the
client leaves mid-stream."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import pytest

from gateway_support import (
    Served,
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
from serve_support import free_port
from spendgate.domain.tokens import estimate_text_tokens
from spendgate.mock_upstream.runner import MockUpstreamThread

CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
  - {{id: beta, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
  - {{id: dead, kind: openai, base_url: "http://127.0.0.1:{dead}/v1", api_key_env: ALPHA_KEY}}
  - {{id: claude, kind: anthropic, base_url: "{mock}", api_key_env: ALPHA_KEY}}
  - {{id: quiet, kind: openai, base_url: "{quiet}/v1", api_key_env: ALPHA_KEY}}
models:
  - {{id: quiet-instruct, provider: quiet, upstream_id: gpt-3.5-turbo-instruct, cost_tier: low,
     max_output_tokens: 4096}}
  - {{id: gpt-3.5-turbo-instruct, provider: alpha, cost_tier: low, max_output_tokens: 4096}}
  - {{id: davinci-002, provider: beta, cost_tier: low, max_output_tokens: 4096}}
  - {{id: broken-instruct, provider: dead, upstream_id: gpt-3.5-turbo-instruct, cost_tier: low,
     max_output_tokens: 4096}}
  - {{id: claude-3-5-haiku, provider: claude, cost_tier: low, max_output_tokens: 8192}}
routing: {{default_model: gpt-3.5-turbo-instruct, mode: enforced, smart_routing: false,
          failover: true}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
  - {{id: bob, key_env: BOB_KEY, principal: bob, project: acme}}
budgets:
  - {{id: alice-tokens, scope: {{kind: principal, id: alice}}, metric: tokens, interval: daily,
     hard_limit: 100000000}}
  - {{id: bob-usd, scope: {{kind: principal, id: bob}}, metric: usd, interval: daily,
     hard_limit: 0.0001}}
"""
ENV = {"ALPHA_KEY": "sk-alpha-upstream-secret", "ALICE_KEY": "sg-alice", "BOB_KEY": "sg-bob"}
INSTRUCT_IN, INSTRUCT_OUT = Decimal("1.5"), Decimal("2")  # genai-prices, USD per 1M tokens


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0, stream_chunks=200, output_tokens=2000) as mock:
        yield mock


@pytest.fixture(scope="module")
def quiet() -> Iterator[MockUpstreamThread]:
    """A mock that reports no usage (as some OpenAI-compatible servers do)."""
    with quiet_mock() as mock:
        yield mock


@pytest.fixture(scope="module")
def served(
    mock: MockUpstreamThread, quiet: MockUpstreamThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    database: Path = tmp_path_factory.mktemp("completions") / "journal.db"
    text = CONFIG.format(mock=mock.base_url, quiet=quiet.base_url, dead=free_port())
    with serve_config(text, ENV, database=database) as served:
        yield served


def _tokens(served: Served) -> Decimal:
    return counter(served, "alice-tokens", "alice").settled


def test_a_completion_is_settled_from_usage_and_priced_from_the_catalog(
    served: Served, mock: MockUpstreamThread
) -> None:
    before = _tokens(served)
    raw = openai_client(served, "sg-alice").completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt="Write a haiku about budgets.", max_tokens=30
    )
    completion = raw.parse()
    assert completion.object == "text_completion"
    assert completion.choices[0].text
    usage = completion.usage
    assert usage is not None
    assert usage.completion_tokens <= 30
    record = stored(served, raw.headers["x-spendgate-decision-id"])
    assert record.usage_estimated is False
    assert record.decision.status == "ok"
    settled = record.decision.usage
    assert settled is not None
    assert (settled.input_tokens, settled.output_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    expected = (
        usage.prompt_tokens * INSTRUCT_IN + usage.completion_tokens * INSTRUCT_OUT
    ) / 1_000_000
    assert record.decision.actual_cost_usd == expected
    assert _tokens(served) - before == usage.total_tokens
    assert last_upstream_body(mock)["max_tokens"] == 30
    assert open_reservations(served) == 0


def test_the_output_bound_is_openais_default_of_16_and_scales_by_best_of_and_prompts(
    served: Served, mock: MockUpstreamThread
) -> None:
    client = openai_client(served, "sg-alice")
    raw = client.completions.with_raw_response.create(model="gpt-3.5-turbo-instruct", prompt="Hi")
    usage = raw.parse().usage
    assert usage is not None
    assert usage.completion_tokens <= 16
    decision = stored(served, raw.headers["x-spendgate-decision-id"]).decision
    assert decision.estimate.output_tokens_upper == 16
    assert last_upstream_body(mock)["max_tokens"] == 16  # held to what was reserved
    raw = client.completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt=["one", "two"], n=2, best_of=3, max_tokens=10
    )
    decision = stored(served, raw.headers["x-spendgate-decision-id"]).decision
    assert decision.estimate.output_tokens_upper == 2 * 3 * 10
    raw = client.completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt=[1, 2, 3, 4, 5], max_tokens=1
    )
    decision = stored(served, raw.headers["x-spendgate-decision-id"]).decision
    assert decision.estimate.input_tokens_lower == decision.estimate.input_tokens_upper == 5


@pytest.mark.parametrize("include_usage", [False, True])
def test_a_streamed_completion_is_settled_exactly(
    served: Served, mock: MockUpstreamThread, include_usage: bool
) -> None:
    before = _tokens(served)
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    raw = openai_client(served, "sg-alice").completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct",
        prompt="Tell the budget team a story.",
        max_tokens=100,
        stream=True,
        **options,  # type: ignore[arg-type]
    )
    chunks = list(raw.parse())
    text = "".join(chunk.choices[0].text for chunk in chunks if chunk.choices)
    assert text
    assert last_upstream_body(mock)["stream_options"] == {"include_usage": True}
    usage_chunks = [chunk for chunk in chunks if not chunk.choices]
    # The usage chunk the gateway asked for reaches only a client that asked for it.
    assert len(usage_chunks) == (1 if include_usage else 0)
    record = stored(served, raw.headers["x-spendgate-decision-id"])
    assert record.decision.status == "ok"
    assert record.usage_estimated is False
    usage = record.decision.usage
    assert usage is not None
    if include_usage:
        assert usage_chunks[0].usage is not None
        assert usage.output_tokens == usage_chunks[0].usage.completion_tokens
    assert usage.output_tokens == len(text.encode()) // 4  # the mock's rule: 4 bytes a token
    assert _tokens(served) - before == usage.total_tokens
    assert open_reservations(served) == 0


def test_a_client_gone_mid_stream_is_charged_for_input_and_output_so_far(
    served: Served, mock: MockUpstreamThread
) -> None:
    body = {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": "Write the budget team a long letter.",
        "max_tokens": 3000,
        "stream": True,
    }

    mock.options.chunk_delay_ms = 10
    disconnects = mock.stats.client_disconnects
    try:
        before = _tokens(served)
        decision_id = leave_stream(served, "/v1/completions", body, events=3)
        assert eventually(lambda: _tokens(served) > before and open_reservations(served) == 0)
    finally:
        mock.options.chunk_delay_ms = 0
    record = stored(served, decision_id)
    assert record.decision.status == "client_disconnected"
    assert record.usage_estimated is True
    usage = record.decision.usage
    assert usage is not None
    # The input (its reserved upper bound: no usage came) and the output streamed so far.
    assert usage.input_tokens == record.decision.estimate.input_tokens_upper
    assert 0 < usage.output_tokens < 1000
    assert _tokens(served) - before == usage.total_tokens
    assert eventually(lambda: mock.stats.client_disconnects > disconnects)


def test_a_model_on_an_anthropic_provider_is_refused_naming_why(
    served: Served, mock: MockUpstreamThread
) -> None:
    sent = mock.requests_by_path["/v1/messages"]
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client(served, "sg-alice").completions.create(
            model="claude-3-5-haiku", prompt="Hi", max_tokens=5
        )
    message = refused.value.message
    assert "kind anthropic" in message
    assert "/v1/completions" in message
    assert mock.requests_by_path["/v1/messages"] == sent
    assert open_reservations(served) == 0


def test_failover_skips_providers_that_cannot_serve_completions(
    served: Served, mock: MockUpstreamThread
) -> None:
    sent = mock.requests_by_path["/v1/messages"]
    raw = openai_client(served, "sg-alice").completions.with_raw_response.create(
        model="broken-instruct", prompt="Hi", max_tokens=5
    )
    assert raw.parse().choices[0].text
    assert raw.headers["x-spendgate-model"] != "broken-instruct"  # another OpenAI-kind model
    final = stored(served, raw.headers["x-spendgate-decision-id"]).decision
    tried = [attempt.model for attempt in final.attempts]
    assert tried[0] == "broken-instruct"
    assert "claude-3-5-haiku" not in tried
    assert mock.requests_by_path["/v1/messages"] == sent


def test_a_budget_blocks_completions(served: Served, mock: MockUpstreamThread) -> None:
    sent = mock.requests_by_path["/v1/completions"]
    with pytest.raises(openai.RateLimitError) as refused:
        openai_client(served, "sg-bob", max_retries=2).completions.create(
            model="gpt-3.5-turbo-instruct", prompt="Hi", max_tokens=100
        )
    assert refused.value.code == "budget_exceeded"
    assert "max_tokens 100" in refused.value.message
    assert mock.requests_by_path["/v1/completions"] == sent
    assert open_reservations(served) == 0


def test_a_completion_without_usage_is_settled_on_its_text_and_marked(
    served: Served,
) -> None:
    raw = openai_client(served, "sg-alice").completions.with_raw_response.create(
        model="quiet-instruct", prompt="Say something.", max_tokens=40
    )
    completion = raw.parse()
    assert completion.usage is None
    text = completion.choices[0].text
    record = stored(served, raw.headers["x-spendgate-decision-id"])
    assert record.usage_estimated is True
    assert record.decision.usage is not None
    assert record.decision.usage.output_tokens == estimate_text_tokens(text) > 0
