"""Gateway auth (key ring) and the error contract's envelopes."""

from __future__ import annotations

import orjson
import pytest

from spendgate.domain.keys import ApiKey
from spendgate.domain.requests import Protocol
from spendgate.gateway.auth import KeyRing, digest, presented_key
from spendgate.gateway.errors import (
    approval_required,
    budget_exceeded,
    invalid_api_key,
    model_not_found,
)

ALICE = ApiKey("alice", principal="alice", project="acme", key_env="ALICE_KEY")
BOB = ApiKey("bob", principal="bob", project="acme", key_env="BOB_KEY")


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "expected"),
    [
        ("Bearer sk-1", None, "sk-1"),
        ("bearer  sk-1 ", None, "sk-1"),
        (None, "sk-2", "sk-2"),
        ("Basic abc", "sk-3", "sk-3"),
        ("Bearer ", None, None),
        (None, None, None),
    ],
)
def test_presented_key(authorization: str | None, x_api_key: str | None, expected: str) -> None:
    assert presented_key(authorization, x_api_key) == expected


def test_key_ring_keeps_only_digests_and_reports_missing_secrets() -> None:
    ring, missing = KeyRing.from_environment([ALICE, BOB], {"ALICE_KEY": "s3cret"})
    assert missing == ["bob"]
    assert len(ring) == 1
    assert ring.authenticate("s3cret") is ALICE
    assert ring.authenticate("wrong") is None
    assert ring.authenticate(None) is None
    assert "s3cret" not in repr(ring._by_digest)
    assert digest("s3cret") in ring._by_digest


def test_budget_block_is_429_without_retry_and_names_the_policy() -> None:
    error = budget_exceeded("over the limit", "d-1", "acme-daily")
    assert error.status == 429
    assert ("x-should-retry", "false") in error.headers
    body = orjson.loads(error.body())
    assert body["error"]["code"] == "budget_exceeded"
    assert body["error"]["policy_id"] == "acme-daily"
    assert body["decision_id"] == "d-1"


def test_anthropic_envelope() -> None:
    body = orjson.loads(
        approval_required("needs approval", "d-2", "p", "a-1").body(Protocol.ANTHROPIC)
    )
    assert body["type"] == "error"
    assert body["error"]["type"] == "permission_error"
    assert body["error"]["approval_id"] == "a-1"


def test_openai_envelope_fields() -> None:
    body = orjson.loads(model_not_found("gpt-9").body())
    assert body["error"] == {
        "message": "The model 'gpt-9' does not exist.",
        "type": "invalid_request_error",
        "code": "model_not_found",
        "param": "model",
    }
    assert invalid_api_key().status == 401


def test_request_headers_are_validated() -> None:
    from spendgate.domain.routing import RoutingMode, TaskClass
    from spendgate.gateway.headers import HeaderError, RequestHeaders

    parsed = RequestHeaders.parse(
        {
            "x-spendgate-session-id": "s-1",
            "x-spendgate-agent-id": "indexer",
            "x-spendgate-task-class": "auxiliary_summary",
            "x-spendgate-routing-mode": "dry_run",
        }
    )
    assert parsed == RequestHeaders(
        "s-1", "indexer", TaskClass.AUXILIARY_SUMMARY, RoutingMode.DRY_RUN
    )
    assert RequestHeaders.parse({}) == RequestHeaders()
    with pytest.raises(HeaderError, match="x-spendgate-routing-mode"):
        RequestHeaders.parse({"x-spendgate-routing-mode": "off"})


def test_decision_headers() -> None:
    from conftest import chat, policy, run_plan, state
    from spendgate.gateway.headers import decision_headers

    decision = run_plan(state([policy()]), chat("hi"))
    headers = dict(decision_headers(decision))
    assert headers[b"x-spendgate-model"] == b"mini"
    assert headers[b"x-spendgate-routing-action"] == b"degrade"
    assert headers[b"x-spendgate-budget-status"] == b"ok"
    assert float(headers[b"x-spendgate-estimated-cost-usd"]) > 0


def test_metrics_render_prometheus_text() -> None:
    from decimal import Decimal

    from spendgate.domain.pricing import Usage
    from spendgate.gateway.metrics import GatewayMetrics

    metrics = GatewayMetrics()
    metrics.record_usage("gpt-4o", Usage(100, 20, 50), Decimal("0.0012"))
    metrics.record_usage("mystery", Usage(10, 5), None)
    metrics.decisions.labels("degrade").inc()
    text = metrics.render().decode()
    assert 'spendgate_tokens_total{direction="input",model="gpt-4o"} 100.0' in text
    assert 'spendgate_tokens_total{direction="cached_input",model="gpt-4o"} 50.0' in text
    assert 'spendgate_cost_usd_total{model="gpt-4o"} 0.0012' in text
    assert 'spendgate_unpriced_requests_total{model="mystery"} 1.0' in text
    assert 'spendgate_routing_decisions_total{action="degrade"} 1.0' in text
