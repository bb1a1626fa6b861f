"""Failover end to end (issue 3, DESIGN.md §7.3 and §7.11): two providers served by two mock
upstreams; the first fails (500s, or answers after the provider's timeout), the request is
served by the other one, reservations of failed candidates are released, the fallback is
re-checked against the budgets at its own price, and a provider that keeps failing has its
circuit opened (visible, with the reason, in ``/healthz``). An attempt that may have reached the
provider before failing (a timeout) is charged its estimated input, and the journaled decision
shows what happened to every attempt."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import aiohttp
import openai
import orjson
import pytest

from gateway_support import (
    HELLO,
    Served,
    counter,
    decisions,
    http,
    last_upstream_body,
    open_reservations,
    openai_client,
    serve_config,
    stored,
)
from spendgate.cli.decision_render import render_decision
from spendgate.domain.health import CircuitState, Outcome
from spendgate.domain.pricing import Usage
from spendgate.domain.routing import RoutingAction, UpstreamAttempt
from spendgate.mock_upstream.runner import MockUpstreamThread
from spendgate.store.records import StoredDecision

CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{alpha}/v1", api_key_env: ALPHA_KEY, timeout_s: 0.3}}
  - {{id: beta, kind: openai, base_url: "{beta}/v1", api_key_env: BETA_KEY, timeout_s: 5}}
models:
  # The fallback (gpt-4o on beta) costs ~16x the first choice (gpt-4o-mini on alpha).
  - {{id: gpt-4o-mini, provider: alpha, capabilities: [json, vision, tools], cost_tier: low,
     max_output_tokens: 16384}}
  - {{id: gpt-4o, provider: beta, capabilities: [json, vision, tools], cost_tier: medium,
     max_output_tokens: 16384}}
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false, failover: true}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
  - {{id: dave, key_env: DAVE_KEY, principal: dave, project: thrifty}}
budgets:
  - {{id: acme-daily, scope: {{kind: project, id: acme}}, metric: usd, interval: daily,
     hard_limit: 100}}
  # 1,000 output tokens: gpt-4o-mini reserves ~$0.0006 (admitted), gpt-4o ~$0.01 (refused).
  - {{id: thrifty-daily, scope: {{kind: project, id: thrifty}}, metric: usd, interval: daily,
     hard_limit: 0.005}}
"""
ENV = {
    "ALPHA_KEY": "sk-alpha-upstream-secret",
    "BETA_KEY": "sk-beta-upstream-secret",
    "ALICE_KEY": "sg-alice",
    "DAVE_KEY": "sg-dave",
    "SPENDGATE_ADMIN_TOKEN": "sg-admin",
}
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def mocks() -> Iterator[tuple[MockUpstreamThread, MockUpstreamThread]]:
    with MockUpstreamThread(latency_ms=0) as alpha, MockUpstreamThread(latency_ms=0) as beta:
        yield alpha, beta


@pytest.fixture
def alpha(mocks: tuple[MockUpstreamThread, MockUpstreamThread]) -> Iterator[MockUpstreamThread]:
    """The first provider's mock, healthy again after each test."""
    mock = mocks[0]
    yield mock
    mock.options.forced_status = None
    mock.options.latency_ms = 0


@pytest.fixture
def beta(mocks: tuple[MockUpstreamThread, MockUpstreamThread]) -> MockUpstreamThread:
    return mocks[1]


@pytest.fixture
def served(
    mocks: tuple[MockUpstreamThread, MockUpstreamThread], tmp_path: Path
) -> Iterator[Served]:
    """A fresh gateway per test: provider health starts clean."""
    alpha, beta = mocks
    config = CONFIG.format(alpha=alpha.base_url, beta=beta.base_url)
    with serve_config(config, ENV, database=tmp_path / "journal.db") as served:
        yield served


def _calls(mock: MockUpstreamThread) -> int:
    return mock.stats.requests_by_path[CHAT]


def test_500s_fail_over_to_the_other_provider(
    served: Served, alpha: MockUpstreamThread, beta: MockUpstreamThread
) -> None:
    alpha.options.forced_status = 500
    before_alpha, before_beta = _calls(alpha), _calls(beta)
    before = counter(served, "acme-daily", "acme").settled
    raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=100
    )
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-spendgate-model"] == "gpt-4o"
    assert raw.headers["x-spendgate-routing-action"] == "failover"
    assert _calls(alpha) == before_alpha + 1  # tried once (a 500 is not retried there)
    assert _calls(beta) == before_beta + 1
    assert last_upstream_body(beta)["model"] == "gpt-4o"
    # The failed candidate's reservation is gone; the fallback's was settled.
    assert open_reservations(served) == 0
    assert counter(served, "acme-daily", "acme").reserved == 0
    decision = stored(served, raw.headers["x-spendgate-decision-id"]).decision
    assert decision.actual_model == "gpt-4o"
    assert decision.provider == "beta"
    assert decision.requested_model == "gpt-4o-mini"  # what the client asked for
    assert decision.routing_action is RoutingAction.FAILOVER
    assert "provider_failed_failover" in decision.reason_codes
    assert decision.status == "ok"
    assert decision.actual_cost_usd is not None
    assert decision.actual_cost_usd > 0
    # Settled at the price of the model that served it (gpt-4o, not gpt-4o-mini).
    spent = counter(served, "acme-daily", "acme").settled - before
    assert spent == decision.actual_cost_usd
    assert decision.usage is not None
    mini_price = Decimal("0.15") * decision.usage.input_tokens / 1_000_000
    assert spent > mini_price + Decimal("0.6") * decision.usage.output_tokens / 1_000_000
    # Both attempts are on record; a 500 is an answer providers do not bill.
    assert decision.attempts == (
        UpstreamAttempt("gpt-4o-mini", "alpha", "server_error"),
        UpstreamAttempt("gpt-4o", "beta", "ok", decision_id=decision.id),
    )
    assert len(decisions(served)) == 1


def test_a_timeout_fails_over_to_the_other_provider(
    served: Served, alpha: MockUpstreamThread, beta: MockUpstreamThread
) -> None:
    alpha.options.latency_ms = 1500  # alpha's timeout_s is 0.3
    before_beta = _calls(beta)
    raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=100
    )
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-spendgate-model"] == "gpt-4o"
    assert _calls(beta) == before_beta + 1
    assert open_reservations(served) == 0


def test_a_stream_fails_over_before_its_first_byte(
    served: Served, alpha: MockUpstreamThread, beta: MockUpstreamThread
) -> None:
    alpha.options.latency_ms = 1500
    before_beta = _calls(beta)
    stream = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=100, stream=True
    )
    assert stream.headers["x-spendgate-model"] == "gpt-4o"
    text = "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
    assert text
    assert _calls(beta) == before_beta + 1
    assert open_reservations(served) == 0


def test_the_fallback_is_refused_when_the_budget_cannot_afford_its_price(
    served: Served, alpha: MockUpstreamThread, beta: MockUpstreamThread
) -> None:
    """The budget admits gpt-4o-mini but not gpt-4o: when alpha fails, failing over would
    overspend, so the request fails instead (§7.3: fallbacks priced differently must be
    re-checked)."""
    alpha.options.forced_status = 500
    before_beta = _calls(beta)
    sdk = openai_client(served, "sg-dave")
    with pytest.raises(openai.APIStatusError) as failed:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=1000)
    assert failed.value.status_code == 502
    assert failed.value.code == "upstream_error"
    assert _calls(beta) == before_beta  # the pricier fallback was never called
    assert open_reservations(served) == 0
    state = counter(served, "thrifty-daily", "thrifty")
    assert state.settled == 0
    assert state.reserved == 0
    statuses = sorted(d.decision.status or "" for d in decisions(served))
    # The fallback's refused budget check and the request's failure are both recorded.
    assert statuses == ["refused", "upstream_error"]
    failure = stored(served, failed.value.body["decision_id"]).decision
    [refused] = [d.decision for d in decisions(served) if d.decision.status == "refused"]
    assert failure.attempts == (
        UpstreamAttempt("gpt-4o-mini", "alpha", "server_error", decision_id=failure.id),
        UpstreamAttempt("gpt-4o", "beta", "skipped_by_caller", decision_id=refused.id),
    )

    # Healthy again, the same request is served by gpt-4o-mini within the budget.
    alpha.options.forced_status = None
    completion = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=1000)
    assert completion.choices[0].message.content


def test_repeated_500s_open_the_circuit_with_a_reason(
    served: Served, alpha: MockUpstreamThread, beta: MockUpstreamThread
) -> None:
    alpha.options.forced_status = 500
    sdk = openai_client(served, "sg-alice")
    before_alpha = _calls(alpha)
    for _ in range(5):  # the breaker opens after 5 consecutive failures
        completion = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=50)
        assert completion.choices[0].message.content
    assert _calls(alpha) == before_alpha + 5
    health = http("GET", served.url + "/healthz").json()
    assert health["providers"]["alpha"]["circuit"] == "open"
    assert health["providers"]["alpha"]["state"] == "unhealthy"
    reason = health["providers"]["alpha"]["reason"]
    assert "5 consecutive failures" in reason
    assert "HTTP 500" in reason
    assert health["providers"]["beta"]["circuit"] == "closed"

    # While the circuit is open alpha is not called at all: the plan fails over up front.
    raw = sdk.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=50
    )
    assert raw.headers["x-spendgate-model"] == "gpt-4o"
    assert raw.headers["x-spendgate-routing-action"] == RoutingAction.FAILOVER.value
    assert _calls(alpha) == before_alpha + 5
    assert open_reservations(served) == 0


def test_every_candidate_failing_is_a_502_and_releases_everything(
    served: Served, alpha: MockUpstreamThread, beta: MockUpstreamThread
) -> None:
    alpha.options.forced_status = 500
    beta.options.forced_status = 503
    try:
        with pytest.raises(openai.InternalServerError) as failed:
            openai_client(served, "sg-alice").chat.completions.create(
                model="gpt-4o-mini", messages=HELLO, max_tokens=50
            )
    finally:
        beta.options.forced_status = None
    assert failed.value.status_code == 502
    assert failed.value.code == "upstream_error"
    assert open_reservations(served) == 0
    assert counter(served, "acme-daily", "acme").settled == 0
    [failure] = decisions(served)
    assert failure.decision.status == "upstream_error"


def test_a_candidate_skipped_by_its_circuit_does_not_lend_its_price_to_the_fallback(
    served: Served, alpha: MockUpstreamThread, beta: MockUpstreamThread
) -> None:
    """After the cooldown the planner keeps alpha (half-open: degraded) and one probe goes to
    it; a concurrent request finds the probe slot taken, so its planned candidate is skipped
    without being called. It must be served as a failover, reserved and settled at the
    fallback's price, and the planned candidate's reservation released."""
    health = served.gateway.upstreams.health.get("alpha")
    health.config = replace(health.config, cooldown_s=0.1)
    for _ in range(5):
        health.record(time.monotonic(), Outcome.ERROR, 0.01, detail="HTTP 500")
    assert health.circuit is CircuitState.OPEN
    time.sleep(0.15)  # cooldown over: alpha is degraded, no longer unhealthy
    alpha.options.latency_ms = 250  # a slow probe, still within alpha's 0.3 s timeout
    before = counter(served, "acme-daily", "acme").settled

    async def two_requests() -> list[tuple[int, dict[str, str]]]:
        body = orjson.dumps({"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 50})
        headers = {"authorization": "Bearer sg-alice", "content-type": "application/json"}
        async with aiohttp.ClientSession(headers=headers) as session:

            async def one(delay: float) -> tuple[int, dict[str, str]]:
                await asyncio.sleep(delay)
                async with session.post(served.url + CHAT, data=body) as response:
                    await response.read()
                    return response.status, dict(response.headers)

            return list(await asyncio.gather(one(0), one(0.08)))

    (probe_status, probe), (status, other) = asyncio.run(two_requests())
    assert (probe_status, status) == (200, 200)
    assert probe["x-spendgate-model"] == "gpt-4o-mini"
    assert other["x-spendgate-model"] == "gpt-4o"
    assert other["x-spendgate-routing-action"] == "failover"
    assert open_reservations(served) == 0
    served_by_beta = stored(served, other["x-spendgate-decision-id"]).decision
    assert served_by_beta.actual_model == "gpt-4o"
    assert served_by_beta.requested_model == "gpt-4o-mini"
    assert "provider_failed_failover" in served_by_beta.reason_codes
    costs = [
        stored(served, headers["x-spendgate-decision-id"]).decision.actual_cost_usd
        for headers in (probe, other)
    ]
    assert all(cost is not None for cost in costs)
    assert counter(served, "acme-daily", "acme").settled - before == sum(
        cost for cost in costs if cost is not None
    )


def test_a_request_the_provider_rejects_is_neither_failed_over_nor_retried(
    served: Served, alpha: MockUpstreamThread, beta: MockUpstreamThread
) -> None:
    """A 4xx from the provider means the request itself is at fault: another provider would
    refuse it too, and the client's SDK must not send it again (a 502 alone invites the
    official SDKs to retry it twice)."""
    alpha.options.forced_status = 400
    before_alpha, before_beta = _calls(alpha), _calls(beta)
    with pytest.raises(openai.APIStatusError) as failed:
        openai_client(served, "sg-alice", max_retries=2).chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, max_tokens=50
        )
    assert failed.value.status_code == 502
    assert failed.value.code == "upstream_error"
    assert failed.value.response.headers["x-should-retry"] == "false"
    assert (_calls(alpha), _calls(beta)) == (before_alpha + 1, before_beta)
    assert open_reservations(served) == 0
    # The provider is fine (it answered): its circuit stays closed.
    assert http("GET", served.url + "/healthz").json()["providers"]["alpha"]["circuit"] == "closed"


def _charged_for_its_input(record: StoredDecision, attempt: UpstreamAttempt) -> Decimal:
    """``record`` is a timed-out attempt's decision, settled on its estimated input only;
    ``attempt`` its entry in the request's attempts. Returns what it cost."""
    decision = record.decision
    assert decision.status == "upstream_timeout"
    assert record.usage_estimated is True
    assert decision.usage == Usage(input_tokens=decision.estimate.input_tokens_upper)
    assert decision.usage.input_tokens > 0
    assert attempt.may_have_billed is True
    assert attempt.usage == decision.usage
    assert decision.actual_cost_usd is not None
    assert decision.actual_cost_usd > 0
    assert attempt.cost_usd == decision.actual_cost_usd
    return decision.actual_cost_usd


@pytest.mark.parametrize("stream", [False, True])
def test_a_timed_out_attempt_is_charged_its_input_and_the_request_shows_every_attempt(
    served: Served, alpha: MockUpstreamThread, beta: MockUpstreamThread, stream: bool
) -> None:
    """alpha received the request and answered after the gateway's timeout: it bills the
    input all the same. The planned decision is settled on its estimated input (marked
    estimated, ``upstream_timeout``), counted in the budget and the journal, and the request
    is still served by beta, its decision listing both attempts."""
    alpha.options.latency_ms = 1500  # alpha's timeout_s is 0.3
    before = counter(served, "acme-daily", "acme").settled
    sdk = openai_client(served, "sg-alice")
    raw = sdk.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=100, stream=stream
    )
    parsed = raw.parse()
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
    assert raw.headers["x-spendgate-model"] == "gpt-4o"
    record = stored(served, raw.headers["x-spendgate-decision-id"]).decision
    assert record.status == "ok"
    assert record.actual_cost_usd is not None
    [timed_out, answered] = record.attempts
    assert (timed_out.model, timed_out.provider, timed_out.outcome) == (
        "gpt-4o-mini",
        "alpha",
        "timeout",
    )
    assert answered == UpstreamAttempt("gpt-4o", "beta", "ok", decision_id=record.id)
    assert timed_out.decision_id is not None
    charged = _charged_for_its_input(stored(served, timed_out.decision_id), timed_out)
    spent = counter(served, "acme-daily", "acme").settled - before
    assert spent == record.actual_cost_usd + charged
    assert counter(served, "acme-daily", "acme").reserved == 0
    assert open_reservations(served) == 0
    assert served.journal is not None
    by_model = {
        totals.group["model"]: totals.cost_usd
        for totals in served.journal.usage_totals(group_by=["model"])
    }
    assert by_model == {"gpt-4o-mini": charged, "gpt-4o": record.actual_cost_usd}


def test_the_admin_api_and_the_cli_show_every_attempt(
    served: Served, alpha: MockUpstreamThread, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha.options.latency_ms = 1500
    raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=100
    )
    decision_id = raw.headers["x-spendgate-decision-id"]
    stored(served, decision_id)
    shown = http(
        "GET", f"{served.url}/api/v1/decisions/{decision_id}", authorization="Bearer sg-admin"
    ).json()
    timed_out, answered = shown["attempts"]
    assert timed_out["outcome"] == "timeout"
    assert timed_out["may_have_billed"] is True
    assert timed_out["usage"]["output_tokens"] == 0
    assert Decimal(timed_out["cost_usd"]) > 0
    assert answered == {
        "model": "gpt-4o",
        "provider": "beta",
        "outcome": "ok",
        "may_have_billed": False,
        "decision_id": decision_id,
        "usage": None,
        "cost_usd": None,
    }
    render_decision(shown)
    out = capsys.readouterr().out
    assert "Attempts (failover)" in out
    assert "maybe" in out
    assert timed_out["decision_id"] in out


def test_a_request_whose_every_attempt_failed_is_charged_what_may_have_been_billed(
    served: Served, alpha: MockUpstreamThread, beta: MockUpstreamThread
) -> None:
    alpha.options.latency_ms = 1500
    beta.options.forced_status = 503
    before = counter(served, "acme-daily", "acme").settled
    try:
        with pytest.raises(openai.InternalServerError) as failed:
            openai_client(served, "sg-alice").chat.completions.create(
                model="gpt-4o-mini", messages=HELLO, max_tokens=50
            )
    finally:
        beta.options.forced_status = None
    assert failed.value.status_code == 502
    [record] = decisions(served)  # the request, charged for alpha's attempt
    assert record.decision.id == failed.value.body["decision_id"]
    [timed_out, refused] = record.decision.attempts
    assert timed_out.decision_id == record.decision.id
    charged = _charged_for_its_input(record, timed_out)
    # beta answered 503: not billed, so its decision was released, not journaled.
    assert refused == UpstreamAttempt("gpt-4o", "beta", "server_error")
    assert counter(served, "acme-daily", "acme").settled - before == charged
    assert open_reservations(served) == 0


def test_an_attempt_that_never_reached_its_provider_is_not_charged(
    mocks: tuple[MockUpstreamThread, MockUpstreamThread], tmp_path: Path
) -> None:
    """A provider nobody listens for: the request never left (connect errors, retried once),
    so nothing is charged for it; the attempts say so, and the fallback's answer is all
    that is spent."""
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = CONFIG.format(alpha=f"http://127.0.0.1:{port}", beta=mocks[1].base_url)
    with serve_config(config, ENV, database=tmp_path / "journal.db") as down:
        raw = openai_client(down, "sg-alice").chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HELLO, max_tokens=50
        )
        record = stored(down, raw.headers["x-spendgate-decision-id"]).decision
        assert [(a.provider, a.outcome, a.may_have_billed) for a in record.attempts] == [
            ("alpha", "connect_error", False),
            ("alpha", "connect_error", False),
            ("beta", "ok", False),
        ]
        assert all(a.usage is None and a.decision_id is None for a in record.attempts[:2])
        assert [d.decision.id for d in decisions(down)] == [record.id]
        assert counter(down, "acme-daily", "acme").settled == record.actual_cost_usd
        assert open_reservations(down) == 0
