"""Alerts across replicas (skipped, saying why, without Redis): the detector runs on the one
replica holding the alerts lease, and sees the requests every replica serves."""

from __future__ import annotations

import time
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_support import journal_url_for
from redis_support import REDIS_URL
from serve_support import serve_process
from spendgate.mock_upstream.runner import MockUpstreamThread

KEY = "sg-replica-alerts-acme"
ADMIN = "sg-replica-alerts-admin"
ENV = {"ACME_KEY": KEY, "SPENDGATE_ADMIN_TOKEN": ADMIN}


def config(mock_url: str, database: str, prefix: str) -> str:
    return f"""
providers: [{{id: alpha, kind: openai, base_url: "{mock_url}", api_key_env: ACME_KEY}}]
models:
  - {{id: gpt-4o-mini, provider: alpha}}
  - {{id: house-llm, provider: alpha, upstream_id: house-llm, cost_tier: low}}
unpriced_action: alert
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false}}
keys: [{{id: acme, key_env: ACME_KEY, principal: alice, project: acme}}]
budgets:
  - {{id: acme-requests, scope: {{kind: project, id: acme}}, metric: requests,
     interval: daily, hard_limit: 4}}
alerts: {{evaluate_every_seconds: 0.5}}
database_url: "{database}"
ledger_url: "{REDIS_URL}"
ledger_prefix: "{prefix}"
"""


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    return redis_prefix


def _chat(url: str, model: str = "gpt-4o-mini") -> int:
    response = httpx.post(
        url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {KEY}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    return response.status_code


def _alerts(url: str) -> list[dict[str, Any]]:
    response = httpx.get(url + "/api/v1/alerts", headers={"authorization": f"Bearer {ADMIN}"})
    response.raise_for_status()
    alerts: list[dict[str, Any]] = response.json()["data"]
    return alerts


def test_the_detectors_replica_sees_what_the_other_replica_served(
    tmp_path: Path, prefix: str
) -> None:
    """Traffic only through the replica without the lease: an unpriced model (seen only in
    request outcomes, never in counters) and a budget refusing requests raise their alerts."""
    with MockUpstreamThread(latency_ms=0) as mock, ExitStack() as stack:
        text = config(mock.openai_base_url, journal_url_for(tmp_path / "r.db"), prefix)
        folders = [tmp_path / "detector", tmp_path / "other"]
        for folder in folders:
            folder.mkdir()
        detector = stack.enter_context(serve_process(folders[0], text, ENV))
        detector.wait_for("lease alerts: taken")
        other = stack.enter_context(serve_process(folders[1], text, ENV))
        assert "lease alerts: taken" not in other.log()
        statuses = [_chat(other.url, "house-llm"), *(_chat(other.url) for _ in range(5))]
        assert statuses == [200, 200, 200, 200, 429, 429]
        deadline = time.monotonic() + 10
        while True:
            kinds = {alert["kind"] for alert in _alerts(other.url)}
            if {"unpriced_model", "budget_exhausted"} <= kinds:
                break
            assert time.monotonic() < deadline, f"alerts seen: {kinds}"
            time.sleep(0.2)
        metrics = httpx.get(other.url + "/metrics").text
        assert "spendgate_alert_events_dropped_total 0.0" in metrics
        assert "lease alerts: taken" not in other.log()


def test_the_relay_skips_what_is_not_an_outcome_and_counts_it(redis_prefix: str) -> None:
    """Whatever else lands in the relay's list (another version's format, a stray write) is
    skipped and counted as dropped; the outcomes around it still reach the detector."""
    from redis_support import connect, run
    from spendgate.alerting.outcomes import RequestOutcome
    from spendgate.alerting.relay import OutcomeRelay

    outcome = RequestOutcome(
        (("acme-daily", "acme"),), (), False, Decimal("0.000000000000000001"), False,
        ("acme", "alice", "k1"), "gpt-4o-mini", "alpha", "d1",
    )  # fmt: skip

    async def scenario() -> list[RequestOutcome]:
        client = await connect()
        try:
            relay = OutcomeRelay(client, prefix=redis_prefix)
            await client.rpush(relay.key, b"not json", b'{"a": 1}', outcome.encode(), b"[1]")
            pulled = await relay.pull()
            assert relay.dropped == 3
            return pulled
        finally:
            await client.aclose()

    assert run(scenario()) == [outcome]
