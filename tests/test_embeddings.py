"""``POST /v1/embeddings`` through a served gateway, the official OpenAI SDK as the client:
metered and budgeted like chat (usd, tokens and requests budgets, filters by model), never
rerouted (routing, degrade and escalation keep the model asked for), refused clearly for a
chat model (and a chat request for an embeddings model)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from gateway_support import (
    HELLO,
    Served,
    anthropic_client,
    counter,
    http,
    last_upstream_body,
    open_reservations,
    openai_client,
    serve_config,
    stored,
)
from spendgate.config import ConfigError, parse_config
from spendgate.mock_upstream.runner import MockUpstreamThread
from spendgate.mock_upstream.textgen import text_tokens

ADMIN = "sg-admin-embeddings"
CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
  - {{id: claude, kind: anthropic, base_url: "{mock}", api_key_env: ALPHA_KEY}}
models:
  - {{id: text-embedding-3-small, provider: alpha, capabilities: [embeddings]}}
  - {{id: text-embedding-3-large, provider: alpha, capabilities: [embeddings]}}
  # Priced by the config, not the catalog.
  - {{id: house-embedder, provider: alpha, upstream_id: bge-m3, capabilities: [embeddings]}}
  - {{id: gpt-4o-mini, provider: alpha, cost_tier: low, max_output_tokens: 16384}}
  - {{id: gpt-4o, provider: alpha, cost_tier: medium, max_output_tokens: 16384}}
  - {{id: claude-sonnet-4, provider: claude, cost_tier: high, max_output_tokens: 8192}}
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: true, failover: true}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
  - {{id: bob, key_env: BOB_KEY, principal: bob, project: acme}}
  - {{id: carol, key_env: CAROL_KEY, principal: carol, project: acme}}
  - {{id: dave, key_env: DAVE_KEY, principal: dave, project: acme}}
  - {{id: erin, key_env: ERIN_KEY, principal: erin, project: acme}}
  - {{id: frank, key_env: FRANK_KEY, principal: frank, project: acme}}
  - {{id: grace, key_env: GRACE_KEY, principal: grace, project: acme}}
  - {{id: heidi, key_env: HEIDI_KEY, principal: heidi, project: acme}}
budgets:
  - {{id: alice-usd, scope: {{kind: principal, id: alice}}, metric: usd, interval: daily,
     hard_limit: 10}}
  # 100 tokens' worth at text-embedding-3-small's $0.02 per 1M tokens.
  - {{id: bob-usd, scope: {{kind: principal, id: bob}}, metric: usd, interval: daily,
     hard_limit: 0.000002}}
  - {{id: carol-embedding-tokens, scope: {{kind: principal, id: carol}}, metric: tokens,
     interval: daily, hard_limit: 1000, filters: {{models: [text-embedding-3-small]}}}}
  - {{id: dave-embedding-requests, scope: {{kind: principal, id: dave}}, metric: requests,
     interval: daily, hard_limit: 2, filters: {{models: [text-embedding-3-large]}}}}
  # Any spend crosses the soft limit, whose action is to degrade.
  - {{id: erin-soft-degrade, scope: {{kind: principal, id: erin}}, metric: usd,
     interval: daily, soft_limit: 0.0000000001, soft_action: degrade, hard_limit: 10,
     degrade_to: text-embedding-3-small}}
  - {{id: frank-hard-degrade, scope: {{kind: principal, id: frank}}, metric: usd,
     interval: daily, hard_limit: 0.0000001, hard_action: degrade,
     degrade_to: text-embedding-3-small}}
  - {{id: grace-tokens, scope: {{kind: principal, id: grace}}, metric: tokens,
     interval: daily, hard_limit: 1000}}
  - {{id: heidi-approval, scope: {{kind: principal, id: heidi}}, metric: usd,
     interval: daily, hard_limit: 0.0000001, hard_action: require_approval}}
pricing:
  - {{model: house-embedder, input_per_mtok: 0.05, output_per_mtok: 0}}
"""
ENV = {
    "ALPHA_KEY": "sk-alpha-upstream-secret",
    "SPENDGATE_ADMIN_TOKEN": ADMIN,
    **{f"{name.upper()}_KEY": f"sg-{name}" for name in ("alice", "bob", "carol", "dave")},
    **{f"{name.upper()}_KEY": f"sg-{name}" for name in ("erin", "frank", "grace", "heidi")},
}
SMALL_PRICE = Decimal("0.02")  # genai-prices: USD per 1M input tokens
LARGE_PRICE = Decimal("0.13")


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0) as mock:
        yield mock


@pytest.fixture(scope="module")
def served(mock: MockUpstreamThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    database: Path = tmp_path_factory.mktemp("embeddings") / "journal.db"
    with serve_config(CONFIG.format(mock=mock.base_url), ENV, database=database) as served:
        yield served


def _admin(served: Served, path: str) -> dict[str, object]:
    assert served.journal is not None
    assert served.journal.flush(10)
    response = httpx.get(
        f"{served.url}/api/v1{path}", headers={"authorization": f"Bearer {ADMIN}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, dict)
    return body


@pytest.mark.parametrize(
    ("given", "tokens", "vectors", "encoding"),
    [
        (
            "The budget team meets on Tuesdays.",
            text_tokens("The budget team meets on Tuesdays."),
            1,
            "float",
        ),
        (
            ["first text", "a second, longer text to embed"],
            text_tokens("first text") + text_tokens("a second, longer text to embed"),
            2,
            "float",
        ),
        ([101, 2023, 2003, 1037, 3231, 102], 6, 1, "float"),
        ([[1, 2, 3], [4, 5, 6, 7]], 7, 2, "float"),
        ("base64 on the wire, as the SDK asks by default", None, 1, "base64"),
    ],
    ids=["string", "strings", "token-ids", "token-id-lists", "base64"],
)
def test_embeddings_are_metered_priced_from_the_catalog_and_counted(
    served: Served,
    mock: MockUpstreamThread,
    given: object,
    tokens: int | None,
    vectors: int,
    encoding: str,
) -> None:
    client = openai_client(served, "sg-alice")
    before = counter(served, "alice-usd", "alice").settled
    options = {"encoding_format": "float"} if encoding == "float" else {}
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small",
        input=given,  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )
    answer = raw.parse()
    assert raw.headers["x-spendgate-model"] == "text-embedding-3-small"
    assert raw.headers["x-spendgate-routing-action"] == "proceed"
    assert len(answer.data) == vectors
    for item in answer.data:  # the SDK decoded base64 itself when it asked for it
        assert len(item.embedding) == 16
        assert math.isclose(sum(v * v for v in item.embedding), 1.0, rel_tol=1e-5)
    if encoding == "base64":
        assert last_upstream_body(mock)["encoding_format"] == "base64"
    else:
        assert answer.usage.prompt_tokens == tokens
    prompt = answer.usage.prompt_tokens

    decision_id = raw.headers["x-spendgate-decision-id"]
    found = stored(served, decision_id)
    assert found.usage_estimated is False
    assert found.decision.usage is not None
    assert (found.decision.usage.input_tokens, found.decision.usage.output_tokens) == (prompt, 0)
    cost = Decimal(prompt) * SMALL_PRICE / 1_000_000
    assert found.decision.actual_cost_usd == cost
    assert found.decision.estimate.output_tokens_upper == 0
    assert found.decision.estimate.input_tokens_upper >= prompt
    detail = _admin(served, f"/decisions/{decision_id}")
    assert Decimal(str(detail["actual_cost_usd"])) == cost
    assert detail["status"] == "ok"
    assert counter(served, "alice-usd", "alice").settled == before + cost
    assert open_reservations(served) == 0


def test_token_ids_are_counted_exactly_in_the_reservation(served: Served) -> None:
    client = openai_client(served, "sg-alice")
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=[[7] * 300, [8] * 200], encoding_format="float"
    )
    estimate = stored(served, raw.headers["x-spendgate-decision-id"]).decision.estimate
    assert estimate.input_tokens_lower == estimate.input_tokens_upper == 500


def test_a_usd_budget_blocks_embeddings_and_the_sdk_does_not_retry(
    served: Served, mock: MockUpstreamThread
) -> None:
    client = openai_client(served, "sg-bob", max_retries=3)
    client.embeddings.create(model="text-embedding-3-small", input="short", encoding_format="float")
    sent = mock.requests_by_path["/v1/embeddings"]
    with pytest.raises(openai.RateLimitError) as refused:
        client.embeddings.create(model="text-embedding-3-small", input=["many words to embed"] * 20)
    error = refused.value
    assert error.status_code == 429
    assert error.code == "budget_exceeded"
    assert error.response.headers["x-should-retry"] == "false"
    assert "bob-usd" in error.message or error.body["policy_id"] == "bob-usd"  # type: ignore[index]
    assert "no output" in error.message
    assert mock.requests_by_path["/v1/embeddings"] == sent  # neither sent nor retried
    decision = stored(served, error.response.headers["x-spendgate-decision-id"]).decision
    assert decision.routing_action.value == "block"
    assert open_reservations(served) == 0


def test_a_tokens_budget_filtered_to_the_embeddings_model(served: Served) -> None:
    client = openai_client(served, "sg-carol")
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=20)
    assert counter(served, "carol-embedding-tokens", "carol").settled == 0  # chat: not counted
    answer = client.embeddings.create(
        model="text-embedding-3-small", input="count me", encoding_format="float"
    )
    assert counter(served, "carol-embedding-tokens", "carol").settled == answer.usage.prompt_tokens
    # A thousand token ids, exactly: more than what is left.
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="text-embedding-3-small", input=list(range(1000)))
    # The large model is not in the filter: not limited by it.
    client.embeddings.create(model="text-embedding-3-large", input=list(range(1000)))


def test_a_requests_budget_counts_embeddings(served: Served) -> None:
    client = openai_client(served, "sg-dave")
    for _ in range(2):
        client.embeddings.create(model="text-embedding-3-large", input="one request")
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="text-embedding-3-large", input="one request too many")
    assert counter(served, "dave-embedding-requests", "dave").settled == 2


def test_smart_routing_and_a_degrade_policy_keep_the_embeddings_model(
    served: Served, mock: MockUpstreamThread
) -> None:
    client = openai_client(served, "sg-erin")
    for _ in range(2):  # the second one is past the soft limit: chat would be degraded
        raw = client.embeddings.with_raw_response.create(
            model="text-embedding-3-large", input="hi", encoding_format="float"
        )
        assert raw.headers["x-spendgate-model"] == "text-embedding-3-large"
        assert last_upstream_body(mock)["model"] == "text-embedding-3-large"
    decision = stored(served, raw.headers["x-spendgate-decision-id"]).decision
    assert decision.target_model == decision.recommended_model == "text-embedding-3-large"
    assert "embeddings_model_kept" in decision.reason_codes
    assert "embeddings_not_degraded" in decision.reason_codes
    assert decision.fallbacks == ()
    usage = decision.usage
    assert usage is not None
    assert decision.actual_cost_usd == Decimal(usage.input_tokens) * LARGE_PRICE / 1_000_000


def test_a_hard_degrade_blocks_embeddings_instead(served: Served, mock: MockUpstreamThread) -> None:
    client = openai_client(served, "sg-frank")
    sent = mock.requests_by_path["/v1/embeddings"]
    with pytest.raises(openai.RateLimitError) as refused:
        client.embeddings.create(model="text-embedding-3-large", input="x" * 400)
    assert "vectors of different models are not comparable" in refused.value.message
    assert mock.requests_by_path["/v1/embeddings"] == sent
    decision_id = refused.value.response.headers["x-spendgate-decision-id"]
    decision = stored(served, decision_id).decision
    assert decision.routing_action.value == "block"
    assert decision.target_model == "text-embedding-3-large"


def test_embeddings_for_a_chat_model_and_chat_for_an_embeddings_model_are_refused(
    served: Served,
) -> None:
    client = openai_client(served, "sg-alice")
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="gpt-4o-mini", input="x")
    assert refused.value.code == "model_not_supported"
    assert "capability 'embeddings'" in refused.value.message
    assert "text-embedding-3-small" in refused.value.message  # names the ones that can
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="claude-sonnet-4", input="x")
    assert "cannot create embeddings" in refused.value.message
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="text-embedding-3-small", messages=HELLO)
    assert "is an embeddings model" in refused.value.message
    with pytest.raises(anthropic.BadRequestError) as rejected:
        anthropic_client(served, "sg-alice").messages.create(
            model="text-embedding-3-small", max_tokens=10, messages=HELLO
        )
    assert "is an embeddings model" in rejected.value.message
    assert open_reservations(served) == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "text-embedding-3-small"}, "input"),
        ({"model": "text-embedding-3-small", "input": ""}, "input"),
        ({"model": "text-embedding-3-small", "input": []}, "input"),
        ({"model": "text-embedding-3-small", "input": [1, "a"]}, "input"),
        ({"model": "text-embedding-3-small", "input": [1, -2]}, "input"),
        ({"model": "text-embedding-3-small", "input": [[1], []]}, "input"),
        ({"model": "text-embedding-3-small", "input": [True]}, "input"),
        ({"model": "text-embedding-3-small", "input": ["a"] * 2049}, "input"),
        (
            {"model": "text-embedding-3-small", "input": "a", "encoding_format": "hex"},
            "encoding_format",
        ),
        ({"model": "text-embedding-3-small", "input": "a", "dimensions": 0}, "dimensions"),
    ],
)
def test_malformed_embeddings_are_400_naming_the_field(
    served: Served, body: dict[str, object], param: str
) -> None:
    reply = http("POST", served.url + "/v1/embeddings", json=body, authorization="Bearer sg-alice")
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == param


def test_an_embeddings_model_on_an_anthropic_provider_is_refused_by_config() -> None:
    text = """
providers:
  - {id: claude, kind: anthropic, api_key_env: X}
models:
  - {id: voyage, provider: claude, capabilities: [embeddings]}
"""
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "test.yaml")
    assert "has no embeddings API" in str(refused.value)
    assert "models[0]" in str(refused.value)


def test_concurrent_embeddings_never_overspend(served: Served, mock: MockUpstreamThread) -> None:
    """40 requests of exactly 100 token ids at once against 1,000 tokens: token ids are
    reserved exactly, so exactly 10 pass and the budget ends exactly full."""

    async def run() -> list[int]:
        client = openai.AsyncOpenAI(base_url=served.url + "/v1", api_key="sg-grace", max_retries=0)

        async def one() -> int:
            try:
                await client.embeddings.create(
                    model="text-embedding-3-small", input=[5] * 100, encoding_format="float"
                )
            except openai.RateLimitError:
                return 429
            return 200

        try:
            return await asyncio.gather(*(one() for _ in range(40)))
        finally:
            await client.close()

    statuses = asyncio.run(run())
    assert statuses.count(200) == 10
    assert statuses.count(429) == 30
    state = counter(served, "grace-tokens", "grace")
    assert state.settled == 1000
    assert state.reserved == 0


def test_huge_token_id_input_is_bounded_before_it_is_decoded(
    served: Served, mock: MockUpstreamThread
) -> None:
    sent = mock.requests_by_path["/v1/embeddings"]
    reply = http(
        "POST",
        served.url + "/v1/embeddings",
        json={"model": "text-embedding-3-small", "input": [1] * 100_001},
        authorization="Bearer sg-alice",
    )
    assert reply.status_code == 400
    assert "split the request" in reply.json()["error"]["message"]
    assert mock.requests_by_path["/v1/embeddings"] == sent
    assert open_reservations(served) == 0


def test_a_config_price_prices_an_embeddings_model(served: Served) -> None:
    raw = openai_client(served, "sg-alice").embeddings.with_raw_response.create(
        model="house-embedder", input="priced by the operator", encoding_format="float"
    )
    prompt = raw.parse().usage.prompt_tokens
    decision = stored(served, raw.headers["x-spendgate-decision-id"]).decision
    assert decision.actual_cost_usd == Decimal(prompt) * Decimal("0.05") / 1_000_000
    assert decision.estimate.source is not None
    assert decision.estimate.source.value == "config"


def test_an_approval_budget_refuses_embeddings_with_403(served: Served) -> None:
    with pytest.raises(openai.PermissionDeniedError) as refused:
        openai_client(served, "sg-heidi").embeddings.create(
            model="text-embedding-3-small", input="needs an approval"
        )
    assert refused.value.code == "approval_required"
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert open_reservations(served) == 0
