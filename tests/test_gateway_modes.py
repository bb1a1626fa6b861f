"""Routing modes end to end (DESIGN.md §1, defects §6.6 and §6.7): the same traffic through a
gateway configured ``enforced``, ``suggest`` and ``dry_run``, checking what the upstream really
received, what the client was told, and what was recorded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import openai
import pytest

from gateway_support import (
    HELLO,
    Served,
    counter,
    last_upstream_body,
    open_reservations,
    openai_client,
    serve_config,
    stored,
)
from spendgate.domain.routing import RoutingAction, RoutingMode
from spendgate.mock_upstream.runner import MockUpstreamThread

CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
models:
  - {{id: gpt-4o-mini, provider: alpha, capabilities: [json, vision, tools], cost_tier: low,
     max_output_tokens: 16384}}
  - {{id: gpt-4o, provider: alpha, capabilities: [json, vision, tools], cost_tier: medium,
     max_output_tokens: 16384}}
routing: {{default_model: gpt-4o, mode: {mode}, smart_routing: true, failover: false}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
  - {{id: bob, key_env: BOB_KEY, principal: bob, project: tight}}
  - {{id: carol, key_env: CAROL_KEY, principal: carol, project: tight,
     permissions: [override_routing_mode]}}
budgets:
  # $0.001 a day: a request reserving 2,000 output tokens of gpt-4o-mini ($0.0012) is refused.
  - {{id: tiny, scope: {{kind: project, id: tight}}, metric: usd, interval: daily,
     hard_limit: 0.001}}
  - {{id: big, scope: {{kind: project, id: acme}}, metric: usd, interval: daily,
     hard_limit: 1000}}
"""
ENV = {
    "ALPHA_KEY": "sk-alpha-upstream-secret",
    "ALICE_KEY": "sg-alice",
    "BOB_KEY": "sg-bob",
    "CAROL_KEY": "sg-carol",
}
# Blocked by "tiny" whatever the mode would route it to: gpt-4o-mini is already the cheapest.
COSTLY = {"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 2000}
MODES = [mode.value for mode in RoutingMode]


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0) as mock:
        yield mock


@pytest.fixture(scope="module")
def gateways(
    mock: MockUpstreamThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Served]]:
    """One gateway per configured mode, started on first use, each journaling to its own
    SQLite file."""
    started: dict[str, Served] = {}
    with ExitStack() as stack:

        def gateway(mode: str) -> Served:
            if mode not in started:
                database: Path = tmp_path_factory.mktemp(mode) / "journal.db"
                config = CONFIG.format(mock=mock.base_url, mode=mode)
                started[mode] = stack.enter_context(serve_config(config, ENV, database=database))
            return started[mode]

        yield gateway


@pytest.mark.parametrize("mode", MODES)
def test_a_simple_prompt_is_rerouted_only_when_enforced(
    mode: str, gateways: Callable[[str], Served], mock: MockUpstreamThread
) -> None:
    served = gateways(mode)
    raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO, max_tokens=100
    )
    completion = raw.parse()
    upstream_model = last_upstream_body(mock)["model"]
    headers = raw.headers
    decision = stored(served, headers["x-spendgate-decision-id"]).decision

    assert completion.choices[0].message.content
    assert headers["x-spendgate-recommended-model"] == "gpt-4o-mini"
    assert decision.mode is RoutingMode(mode)
    assert decision.recommended_model == "gpt-4o-mini"
    assert decision.status == "ok"
    assert decision.usage is not None
    if mode == "enforced":
        assert upstream_model == "gpt-4o-mini"
        assert headers["x-spendgate-model"] == "gpt-4o-mini"
        assert headers["x-spendgate-routing-action"] == "degrade"
        assert decision.routing_action is RoutingAction.DEGRADE
        assert decision.would_action is None
    else:
        # suggest and dry_run call what was asked for; the recommendation is only told.
        assert upstream_model == "gpt-4o"
        assert headers["x-spendgate-model"] == "gpt-4o"
        assert headers["x-spendgate-routing-action"] == "proceed"
        assert decision.actual_model == "gpt-4o"
        assert decision.routing_action is RoutingAction.PROCEED
        assert decision.would_action is RoutingAction.DEGRADE
        assert decision.estimated_saving_usd is not None
        assert decision.estimated_saving_usd > 0
        expected_code = "suggest_only" if mode == "suggest" else "dry_run_not_applied"
        assert expected_code in decision.reason_codes
    assert open_reservations(served) == 0


@pytest.mark.parametrize("mode", MODES)
def test_a_request_over_a_hard_limit_is_blocked_only_when_enforced(
    mode: str, gateways: Callable[[str], Served], mock: MockUpstreamThread
) -> None:
    served = gateways(mode)
    before_upstream = mock.stats.requests_by_path["/v1/chat/completions"]
    before = counter(served, "tiny", "tight").settled
    sdk = openai_client(served, "sg-bob", max_retries=2)
    if mode == "enforced":
        with pytest.raises(openai.RateLimitError) as blocked:
            sdk.chat.completions.create(**COSTLY)
        error = blocked.value
        assert error.code == "budget_exceeded"
        assert error.response.headers["x-should-retry"] == "false"
        body = error.response.json()
        assert body["error"]["policy_id"] == "tiny"
        # Refused: the SDK did not retry, nothing reached the upstream, nothing was spent.
        assert mock.stats.requests_by_path["/v1/chat/completions"] == before_upstream
        assert counter(served, "tiny", "tight").settled == before
        decision = stored(served, body["decision_id"]).decision
        assert decision.status == "refused"
        assert decision.routing_action is RoutingAction.BLOCK
    else:
        raw = sdk.chat.completions.with_raw_response.create(**COSTLY)
        assert raw.parse().choices[0].message.content
        assert raw.headers["x-spendgate-routing-action"] == "proceed"
        assert raw.headers["x-spendgate-budget-status"] == "blocked"
        assert last_upstream_body(mock)["model"] == "gpt-4o-mini"
        assert mock.stats.requests_by_path["/v1/chat/completions"] == before_upstream + 1
        decision = stored(served, raw.headers["x-spendgate-decision-id"]).decision
        assert decision.status == "ok"
        assert decision.routing_action is RoutingAction.PROCEED
        assert decision.would_action is RoutingAction.BLOCK
        assert "budget_blocked" in decision.reason_codes
        # The actual usage is settled in every mode, so the spend stays visible.
        assert decision.actual_cost_usd is not None
        assert counter(served, "tiny", "tight").settled == before + decision.actual_cost_usd
    assert open_reservations(served) == 0
    assert counter(served, "tiny", "tight").reserved == 0


def test_a_request_cannot_relax_the_mode_without_the_permission(
    gateways: Callable[[str], Served], mock: MockUpstreamThread
) -> None:
    served = gateways("enforced")
    relax = {"x-spendgate-routing-mode": "suggest"}
    before_upstream = mock.stats.requests_by_path["/v1/chat/completions"]
    with pytest.raises(openai.RateLimitError) as blocked:
        openai_client(served, "sg-bob").chat.completions.create(**COSTLY, extra_headers=relax)
    assert blocked.value.code == "budget_exceeded"
    assert mock.stats.requests_by_path["/v1/chat/completions"] == before_upstream
    refused = stored(served, blocked.value.response.json()["decision_id"]).decision
    assert refused.mode is RoutingMode.ENFORCED
    assert "mode_relax_denied" in refused.reason_codes
    # The client is told in the response, not only in the decision log.
    headers = blocked.value.response.headers
    assert headers["x-spendgate-routing-mode"] == "enforced"
    assert "override_routing_mode" in headers["x-spendgate-warning"]
    # A refused decision called no model.
    assert refused.actual_model is None
    assert refused.provider is None
    assert refused.target_model == "gpt-4o-mini"

    # Allowed through, the denial is said all the same.
    allowed = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=10, extra_headers=relax
    )
    assert allowed.headers["x-spendgate-routing-mode"] == "enforced"
    assert "override_routing_mode" in allowed.headers["x-spendgate-warning"]
    before_upstream += 1

    # Carol's key may override the mode: the same request is only recorded as a would-block.
    raw = openai_client(served, "sg-carol").chat.completions.with_raw_response.create(
        **COSTLY, extra_headers=relax
    )
    assert raw.parse().choices[0].message.content
    assert mock.stats.requests_by_path["/v1/chat/completions"] == before_upstream + 1
    assert raw.headers["x-spendgate-routing-mode"] == "suggest"
    assert "x-spendgate-warning" not in raw.headers
    relaxed = stored(served, raw.headers["x-spendgate-decision-id"]).decision
    assert relaxed.mode is RoutingMode.SUGGEST
    assert "mode_relaxed_by_request" in relaxed.reason_codes
    assert relaxed.would_action is RoutingAction.BLOCK
    assert open_reservations(served) == 0


def test_a_request_may_always_tighten_the_mode(
    gateways: Callable[[str], Served], mock: MockUpstreamThread
) -> None:
    served = gateways("suggest")
    with pytest.raises(openai.RateLimitError):
        openai_client(served, "sg-bob").chat.completions.create(
            **COSTLY, extra_headers={"x-spendgate-routing-mode": "enforced"}
        )
    raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=HELLO,
        max_tokens=100,
        extra_headers={"x-spendgate-routing-mode": "enforced"},
    )
    assert raw.headers["x-spendgate-model"] == "gpt-4o-mini"
    assert last_upstream_body(mock)["model"] == "gpt-4o-mini"


def test_a_block_message_says_the_amount_is_a_worst_case_and_how_to_lower_it(
    gateways: Callable[[str], Served],
) -> None:
    served = gateways("enforced")
    client = openai_client(served, "sg-bob")
    with pytest.raises(openai.RateLimitError) as with_limit:
        client.chat.completions.create(**COSTLY)
    message = with_limit.value.message
    assert "worst case" in message
    assert "+ 2,000 output tokens (max_tokens 2,000)" in message
    assert "A lower max_tokens reserves less." in message
    without_limit = {key: value for key, value in COSTLY.items() if key != "max_tokens"}
    with pytest.raises(openai.RateLimitError) as unbounded:
        client.chat.completions.create(**without_limit)
    message = unbounded.value.message
    assert "+ 16,384 output tokens (gpt-4o-mini's maximum output, as max_tokens is not set)" in (
        message
    )
    assert "Set max_tokens to the output you need to reserve less." in message
