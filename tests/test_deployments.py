"""One model on several deployments, end to end (issue 14): a served gateway, the official
openai SDK as client, three mock upstreams on loopback. gpt-4o is deployed on ``east``
(weight 3) and ``west`` (weight 1); gpt-4o-mini, the fallback model, on ``other``.

A deployment's failure moves the request to the same model's other deployment before any
other model; the decision and the journal say which deployment served and what each attempt
did; repeated failures open the failed provider's circuit, after which requests go straight
to the healthy deployment; weights spread traffic; all deployments down falls back to the
other model, then 502; budgets hold under failover and load."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import openai
import orjson
import pytest

from admin_support import SPENDGATE
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
from spendgate.domain.routing import RoutingAction, RoutingDecision
from spendgate.mock_upstream.runner import MockUpstreamThread

CONFIG = """
providers:
  - {{id: east, kind: openai, base_url: "{east}/v1", api_key_env: EAST_KEY, timeout_s: {timeout}}}
  - {{id: west, kind: openai, base_url: "{west}/v1", api_key_env: WEST_KEY}}
  - {{id: other, kind: openai, base_url: "{other}/v1", api_key_env: OTHER_KEY}}
models:
  - id: gpt-4o
    capabilities: [json, vision, tools]
    max_output_tokens: 16384
    deployments:
      - {{provider: east, weight: 3}}
      - {{provider: west, upstream_id: gpt-4o-west, weight: 1}}
  - {{id: gpt-4o-mini, provider: other, capabilities: [json, vision, tools], cost_tier: low,
     max_output_tokens: 16384}}
routing: {{default_model: gpt-4o, mode: enforced, smart_routing: false, failover: true}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
budgets:
  - {{id: acme-daily, scope: {{kind: project, id: acme}}, metric: usd, interval: daily,
     hard_limit: {limit}}}
"""
ENV = {
    "EAST_KEY": "sk-east-upstream-secret",
    "WEST_KEY": "sk-west-upstream-secret",
    "OTHER_KEY": "sk-other-upstream-secret",
    "ALICE_KEY": "sg-alice",
    "SPENDGATE_ADMIN_TOKEN": "sg-admin",
}
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def mocks() -> Iterator[dict[str, MockUpstreamThread]]:
    with (
        MockUpstreamThread(latency_ms=0) as east,
        MockUpstreamThread(latency_ms=0) as west,
        MockUpstreamThread(latency_ms=0) as other,
    ):
        yield {"east": east, "west": west, "other": other}


@pytest.fixture
def up(mocks: dict[str, MockUpstreamThread]) -> Iterator[dict[str, MockUpstreamThread]]:
    """The mocks, healthy again after each test."""
    yield mocks
    for mock in mocks.values():
        mock.options.forced_status = None
        mock.options.latency_ms = 0


@contextmanager
def _serve(
    mocks: dict[str, MockUpstreamThread],
    tmp_path: Path,
    *,
    east: str | None = None,
    limit: str = "100",
    timeout: float = 5,
) -> Iterator[Served]:
    config = CONFIG.format(
        east=east or mocks["east"].base_url,
        west=mocks["west"].base_url,
        other=mocks["other"].base_url,
        limit=limit,
        timeout=timeout,
    )
    with serve_config(config, ENV, database=tmp_path / "journal.db") as served:
        yield served


@pytest.fixture
def served(up: dict[str, MockUpstreamThread], tmp_path: Path) -> Iterator[Served]:
    """A fresh gateway per test: provider health starts clean."""
    with _serve(up, tmp_path) as served:
        yield served


def _calls(mock: MockUpstreamThread) -> int:
    return mock.stats.requests_by_path[CHAT]


def _ask(served: Served, **options: object) -> openai.APIResponse[object]:
    sdk = openai_client(served, "sg-alice")
    return sdk.chat.completions.with_raw_response.create(  # type: ignore[call-overload,no-any-return]
        model="gpt-4o", messages=HELLO, max_tokens=50, **options
    )


def _failed_over(served: Served) -> RoutingDecision:
    """The decision of the first request that failed over: east (3 in 4) is picked first."""
    for _ in range(10):  # all ten on west first: p < 1e-6
        raw = _ask(served)
        decision = stored(served, raw.headers["x-spendgate-decision-id"]).decision
        if decision.attempts:
            return decision
    raise AssertionError("east was never picked first")


def test_a_failing_deployment_moves_traffic_to_the_same_models_other_deployment(
    served: Served, up: dict[str, MockUpstreamThread]
) -> None:
    up["east"].options.forced_status = 503
    other_before = _calls(up["other"])
    failed_over = []
    for _ in range(4):  # east is picked first 3 times in 4: one of these fails over
        raw = _ask(served)
        assert raw.parse().choices[0].message.content  # type: ignore[attr-defined]
        assert raw.headers["x-spendgate-model"] == "gpt-4o"  # the model, not the deployment
        decision = stored(served, raw.headers["x-spendgate-decision-id"]).decision
        assert decision.provider == "west"
        assert decision.actual_model == "gpt-4o"
        if decision.attempts:
            failed_over.append(decision)
    assert _calls(up["other"]) == other_before  # never another model
    assert last_upstream_body(up["west"])["model"] == "gpt-4o-west"  # west's upstream id
    assert failed_over, "east was never picked first (p < 0.4%)"
    decision = failed_over[0]
    assert [(a.model, a.provider, a.outcome) for a in decision.attempts] == [
        ("gpt-4o", "east", "server_error"),
        ("gpt-4o", "west", "ok"),
    ]
    assert decision.routing_action is RoutingAction.FAILOVER
    assert "deployment_weighted" in decision.reason_codes
    assert "deployment_failover" in decision.reason_codes
    said = " ".join(decision.explanation)
    assert "east serves it, picked by weight (3 of 4" in said
    assert "gpt-4o on east failed (server_error): failover to its deployment on west" in said
    # Same model, same price: one decision, its reservation carried over and settled.
    assert all(a.decision_id in (None, decision.id) for a in decision.attempts)
    assert decision.status == "ok"
    assert open_reservations(served) == 0
    assert len(decisions(served)) == 4


def test_repeated_failures_open_the_deployments_circuit_then_requests_go_straight_to_the_other(
    served: Served, up: dict[str, MockUpstreamThread]
) -> None:
    up["east"].options.forced_status = 500
    for _ in range(40):  # five consecutive failures on east open its circuit
        _ask(served)
        health = http("GET", served.url + "/healthz").json()["providers"]["east"]
        if health["circuit"] == "open":
            break
    assert health["circuit"] == "open"
    east_calls = _calls(up["east"])
    for _ in range(5):
        raw = _ask(served)
        decision = stored(served, raw.headers["x-spendgate-decision-id"]).decision
        assert decision.provider == "west"
        assert decision.attempts == ()  # planned on west: no failed attempt
        assert "deployment_unhealthy" in decision.reason_codes
        assert "gpt-4o's deployment on east is unhealthy" in " ".join(decision.explanation)
    assert _calls(up["east"]) == east_calls  # east was not called while open
    # The admin API shows each deployment with its health.
    models = http(
        "GET", served.url + "/api/v1/models/status", authorization="Bearer sg-admin"
    ).json()["models"]
    gpt4o = next(m for m in models if m["id"] == "gpt-4o")
    by_provider = {d["provider"]: d for d in gpt4o["deployments"]}
    assert by_provider["east"]["health"] == "unhealthy"
    assert by_provider["east"]["weight"] == 3
    assert by_provider["west"] == {
        "provider": "west",
        "upstream_id": "gpt-4o-west",
        "weight": 1,
        "health": "healthy",
        "circuit": "closed",
    }


def test_weights_spread_traffic(served: Served, up: dict[str, MockUpstreamThread]) -> None:
    east, west = _calls(up["east"]), _calls(up["west"])
    sdk = openai_client(served, "sg-alice")
    total = 400
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda _: sdk.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=5),
                range(total),
            )
        )
    on_east = _calls(up["east"]) - east
    assert on_east + _calls(up["west"]) - west == total
    # Binomial(400, 3/4): mean 300, sd ~8.7; the bound is over 5 sd wide.
    assert abs(on_east - 300) <= 45, on_east


def test_every_deployment_down_falls_back_to_another_model_then_502(
    served: Served, up: dict[str, MockUpstreamThread]
) -> None:
    up["east"].options.forced_status = 500
    up["west"].options.forced_status = 502
    raw = _ask(served)
    assert raw.headers["x-spendgate-model"] == "gpt-4o-mini"
    decision = stored(served, raw.headers["x-spendgate-decision-id"]).decision
    tried = [(a.model, a.provider) for a in decision.attempts]
    # Both deployments of gpt-4o (in the order the draw gave), then the other model.
    assert sorted(tried[:2]) == [("gpt-4o", "east"), ("gpt-4o", "west")]
    assert tried[2] == ("gpt-4o-mini", "other")
    assert decision.provider == "other"
    assert "provider_failed_failover" in decision.reason_codes
    assert open_reservations(served) == 0

    up["other"].options.forced_status = 500
    with pytest.raises(openai.APIStatusError) as failed:
        _ask(served)
    assert failed.value.status_code == 502
    assert failed.value.code == "upstream_error"
    assert open_reservations(served) == 0
    assert counter(served, "acme-daily", "acme").reserved == 0


def test_a_dead_deployment_fails_over_to_the_live_one(
    up: dict[str, MockUpstreamThread], tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with _serve(up, tmp_path, east=dead) as served:
        outcomes = set()
        for _ in range(4):
            raw = _ask(served)
            decision = stored(served, raw.headers["x-spendgate-decision-id"]).decision
            assert decision.provider == "west"
            outcomes |= {a.outcome for a in decision.attempts if a.provider == "east"}
        assert outcomes <= {"connect_error"}
        assert open_reservations(served) == 0


def test_a_stream_fails_over_to_the_other_deployment_before_its_first_byte(
    served: Served, up: dict[str, MockUpstreamThread]
) -> None:
    up["east"].options.forced_status = 500
    for _ in range(4):
        raw = _ask(served, stream=True)
        assert raw.headers["x-spendgate-model"] == "gpt-4o"
        chunks = list(raw.parse())  # type: ignore[call-overload]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text
        decision = stored(served, raw.headers["x-spendgate-decision-id"]).decision
        assert decision.provider == "west"
        assert decision.status == "ok"
    assert open_reservations(served) == 0


def test_a_call_that_may_have_been_billed_gets_its_own_reservation(
    up: dict[str, MockUpstreamThread], tmp_path: Path
) -> None:
    """east times out after the request was sent: the provider may have billed it, so its
    reservation is settled on the estimated input and the retry on west reserves anew (one
    reservation never pays for two calls)."""
    up["east"].options.latency_ms = 1500
    with _serve(up, tmp_path, timeout=0.3) as served:
        decision = _failed_over(served)
        first, served_by = decision.attempts
        assert (first.provider, first.outcome, first.may_have_billed) == ("east", "timeout", True)
        assert first.decision_id is not None
        assert first.decision_id != decision.id
        assert served_by.provider == "west"
        assert "provider_failed_failover" in decision.reason_codes
        billed = stored(served, first.decision_id).decision
        assert billed.status == "upstream_timeout"
        assert open_reservations(served) == 0


def test_no_overspend_when_requests_fail_over_under_load(
    up: dict[str, MockUpstreamThread], tmp_path: Path
) -> None:
    """A budget with room for a few requests, 40 at once, east failing: every request that
    fails over carries (or re-makes) its reservation, and the spend never passes the limit."""
    up["east"].options.forced_status = 503
    up["west"].options.latency_ms = 30
    limit = Decimal("0.01")  # gpt-4o reserves ~$0.002 for 200 output tokens
    with _serve(up, tmp_path, limit=str(limit)) as served:
        sdk = openai_client(served, "sg-alice")

        def one(_: int) -> int:
            try:
                sdk.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=200)
            except openai.APIStatusError as error:
                return error.status_code
            return 200

        with ThreadPoolExecutor(20) as pool:
            statuses = list(pool.map(one, range(40)))
        assert 200 in statuses
        assert set(statuses) <= {200, 429}
        state = counter(served, "acme-daily", "acme")
        assert state.reserved == 0
        assert 0 < state.settled <= limit
        assert open_reservations(served) == 0


def _cli(served: Served, *args: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SPENDGATE_")}
    environ.update({"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})
    done = subprocess.run(
        [SPENDGATE, "--url", served.url, "--token", "sg-admin", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_models_status_list_and_explain_show_the_deployments(
    served: Served, up: dict[str, MockUpstreamThread]
) -> None:
    status = _cli(served, "models", "status")
    assert "Deployments" in status
    rows = [line.replace("│", " ").split() for line in status.splitlines()]
    assert ["gpt-4o", "east", "3", "healthy", "closed", "gpt-4o"] in rows
    assert ["gpt-4o", "west", "1", "healthy", "closed", "gpt-4o-west"] in rows
    listed = _cli(served, "models", "list")
    assert "east (weight 3), west (weight 1)" in listed
    explained = _cli(served, "models", "explain", "Say hello.", "--model", "gpt-4o")
    assert "picked by weight" in explained
    data = orjson.loads(_cli(served, "models", "explain", "Hi", "--model", "gpt-4o", "--json"))
    chosen = data["provider"]
    assert chosen in ("east", "west")
    other = {"east": "west", "west": "east"}[chosen]
    assert data["route"][0] == {"model": "gpt-4o", "provider": other}
    assert data["route"][1] == {"model": "gpt-4o-mini", "provider": "other"}


def test_a_deployment_under_other_budgets_is_planned_and_reserved_anew(
    up: dict[str, MockUpstreamThread], tmp_path: Path
) -> None:
    """A policy counts only west's traffic: a call moving from east to west cannot carry
    east's reservation over (it was not made on west's counters), so west is re-planned,
    re-checked and reserved under that policy too."""
    up["east"].options.forced_status = 500
    west_only = """
  - {id: west-only, scope: {kind: global}, metric: usd, interval: daily, hard_limit: 50,
     filters: {providers: [west]}}
"""
    config = CONFIG.format(
        east=up["east"].base_url,
        west=up["west"].base_url,
        other=up["other"].base_url,
        limit="100",
        timeout=5,
    )
    with serve_config(config + west_only, ENV, database=tmp_path / "journal.db") as served:
        decision = _failed_over(served)
        assert decision.provider == "west"
        assert "provider_failed_failover" in decision.reason_codes
        assert "deployment_failover" not in decision.reason_codes
        assert {e.policy_id for e in decision.budget_evaluations} == {"acme-daily", "west-only"}
        assert decision.attempts[0].decision_id is None  # east's decision: released, not billed
        assert counter(served, "west-only", "global").settled > 0
        assert open_reservations(served) == 0
