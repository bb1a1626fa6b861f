"""Alerts end to end: a real gateway, the mock upstream, a local webhook receiver.

Realistic traffic raises each kind the gateway can raise in seconds (budget thresholds and
exhaustion, cost spikes, unpriced models, provider health); a repeated condition is one alert
whose count grows; deliveries are signed, retried with the same delivery id, and survive a
restart; approval events go through the same outbox. The rules that need hours of history
(rate anomaly, forecast, quiet-for-a-cooldown resolution) are in test_alert_detector.py.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from admin_support import AdminGateway, admin_gateway
from gateway_support import settled
from spendgate.store import Alert
from webhook_support import Received, Receiver, webhook_receiver

SECRET = "whsec-test-secret"

CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
models:
  - {{id: gpt-4o, provider: alpha, context_window: 128000, max_output_tokens: 16384}}
  - {{id: house-llm, provider: alpha, upstream_id: house-llm, context_window: 128000,
     max_output_tokens: 16384, cost_tier: low}}
unpriced_action: alert
routing: {{default_model: gpt-4o, mode: enforced, smart_routing: false, failover: false}}
keys:
  - {{id: ops, key_env: OPS_KEY, principal: ops, project: platform, permissions: [admin]}}
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
  - {{id: dave, key_env: DAVE_KEY, principal: dave, project: globex}}
budgets:
  - {{id: acme-daily-tokens, scope: {{kind: project, id: acme}}, metric: tokens,
     interval: daily, hard_limit: 1000, alert_thresholds: [0.3, 0.8],
     hard_action: require_approval}}
alerts:
  cost_spike_usd: 0.01
  evaluate_every_seconds: 0.2
  retry_first_seconds: 0.2
  retry_max_seconds: 1
  webhooks:
    - {{id: ops-hook, url: "HOOK_URL", secret_env: HOOK_SECRET}}
    - {{id: slack, url: "HOOK_URL/slack", format: slack, min_severity: critical,
       kinds: [budget_exhausted, approval.requested]}}
"""
ENV = {"HOOK_SECRET": SECRET}


def _config(url: str) -> str:
    return CONFIG.replace("HOOK_URL", url)


def _alerts(gw: AdminGateway, **match: str) -> list[Alert]:
    journal = gw.served.journal
    assert journal is not None
    return [
        alert
        for alert in journal.alerts.list_alerts(limit=1000)
        if all(getattr(alert, name) == value for name, value in match.items())
    ]


def _wait(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _caught_up(gw: AdminGateway) -> Callable[[], bool]:
    """True once the detector has looked at every request so far and written what it found."""
    service = gw.served.gateway.alerts
    assert service is not None
    return service.caught_up


def _hi(gw: AdminGateway, key: str = "alice") -> int:
    """One request; ``max_tokens`` keeps its reservation under the small acme budget."""
    return gw.chat(key, "hi", max_tokens=300).status_code


def _spend_past(gw: AdminGateway, tokens: int) -> None:
    """Requests by alice until the acme budget has settled past ``tokens``."""
    for _ in range(20):
        if settled(gw.served, "acme-daily-tokens", "acme") > tokens:
            return
        assert _hi(gw) == 200
    raise AssertionError(f"acme never spent {tokens} tokens")


def _signed(body: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture
def gw(tmp_path: Path, receiver: Receiver) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path, _config(receiver.url), ENV) as running:
        yield running


def test_budget_thresholds_open_once_count_up_and_are_delivered_signed(
    gw: AdminGateway, receiver: Receiver
) -> None:
    gw.mock.options.output_tokens = 100
    _spend_past(gw, 300)  # 30%
    _wait(lambda: len(_alerts(gw, alert_kind="budget_threshold")) == 1)
    [half] = _alerts(gw, alert_kind="budget_threshold")
    before = half.occurrences
    assert half.summary == "Budget acme-daily-tokens for acme passed 30% of its limit"
    assert (half.severity, half.scope, half.tenant) == ("warning", "project:acme", "project:acme")
    assert _hi(gw) == 200  # still above 30%: counts, no new alert
    _wait(lambda: _alerts(gw, alert_kind="budget_threshold")[0].occurrences > before)
    assert [a.id for a in _alerts(gw, alert_kind="budget_threshold")] == [half.id]
    receiver.wait_for(lambda got: bool(_threshold_openings(got)))
    [opened] = _threshold_openings(receiver.received)
    assert opened.path == "/hook"  # warning: below the slack hook's min_severity
    assert _signed(opened.body, opened.headers["x-spendgate-signature"])
    assert opened.json["alert"]["id"] == half.id
    assert opened.json["alert"]["kind"] == "budget_threshold"
    time.sleep(0.5)  # repeats within the cooldown are not announced again
    assert len(_threshold_openings(receiver.received)) == 1


def _threshold_openings(got: list[Received]) -> list[Received]:
    return [
        r
        for r in got
        if r.event == "alert.opened" and r.json["alert"]["kind"] == "budget_threshold"
    ]


def test_exhaustion_asks_for_approval_and_both_reach_the_hooks(
    gw: AdminGateway, receiver: Receiver
) -> None:
    gw.mock.options.output_tokens = 250
    answers = [_hi(gw) for _ in range(10)]
    assert answers[0] == 200
    assert 403 in answers  # require_approval
    _wait(lambda: len(_alerts(gw, alert_kind="budget_exhausted")) == 1)
    [exhausted] = _alerts(gw, alert_kind="budget_exhausted")
    assert exhausted.severity == "critical"
    # Each hook's deliveries come in their own order: wait for all three.
    got = receiver.wait_for(
        lambda got: (
            {
                ("/hook/slack", "alert.opened"),
                ("/hook/slack", "approval.requested"),
                ("/hook", "approval.requested"),
            }
            <= {(r.path, r.event) for r in got}
        )
    )
    slack = next(r for r in got if r.path == "/hook/slack" and r.event == "alert.opened")
    assert "x-spendgate-signature" not in slack.headers  # no secret on that hook
    assert slack.json["text"].startswith(":rotating_light: *CRITICAL* Budget acme-daily-tokens")
    requested = next(r for r in got if r.path == "/hook" and r.event == "approval.requested")
    approval_id = requested.json["approval"]["id"]
    assert requested.json["approval"]["policy_id"] == "acme-daily-tokens"
    approved = gw.post(f"/approvals/{approval_id}/approve", json={"scope": "once"})
    assert approved.status_code == 200, approved.text
    got = receiver.wait_for(lambda got: any(r.event == "approval.decided" for r in got))
    [decided] = [r for r in got if r.event == "approval.decided"]  # not for the slack hook
    assert decided.path == "/hook"
    assert decided.json["approval"]["state"] == "approved"
    assert decided.json["approval"]["decided_by"] == "admin-token"
    assert _signed(decided.body, decided.headers["x-spendgate-signature"])


def test_a_rise_fires_cost_spike_and_a_drop_does_not(gw: AdminGateway) -> None:
    gw.mock.options.output_tokens = 60  # ~$0.0006 a request on gpt-4o
    for _ in range(5):
        assert gw.chat("ops", "hi").status_code == 200
    gw.mock.options.output_tokens = 3000  # $0.03: above $0.01 and 5x the median
    assert gw.chat("ops", "hi").status_code == 200
    _wait(lambda: len(_alerts(gw, alert_kind="cost_spike")) == 1)
    [spike] = _alerts(gw, alert_kind="cost_spike")
    assert (spike.scope, spike.tenant) == ("project:platform", "project:platform")
    assert "the usual" in spike.summary
    # globex: expensive first (no history: the absolute threshold alone), then cheaper ones.
    for _ in range(3):
        assert gw.chat("dave", "hi").status_code == 200
    _wait(lambda: len(_alerts(gw, alert_kind="cost_spike", tenant="project:globex")) == 1)
    gw.mock.options.output_tokens = 60
    for _ in range(5):
        assert gw.chat("dave", "hi").status_code == 200
    time.sleep(1.5)  # two passes: the drop neither opens nor counts anything
    [globex] = _alerts(gw, alert_kind="cost_spike", tenant="project:globex")
    assert globex.occurrences == 1  # the two later $0.03 ones were not 5x their median
    assert len(_alerts(gw, alert_kind="cost_spike")) == 2


def test_traffic_to_an_unpriced_model_is_reported(gw: AdminGateway) -> None:
    gw.mock.options.models = (*gw.mock.options.models, "house-llm")
    for _ in range(2):
        assert gw.chat("dave", "hi", model="house-llm").status_code == 200
    _wait(lambda: len(_alerts(gw, alert_kind="unpriced_model")) == 1)
    [unpriced] = _alerts(gw, alert_kind="unpriced_model")
    assert unpriced.summary == "Traffic to house-llm has no price"
    assert unpriced.tenant is None  # the admins'


def test_a_failing_provider_opens_an_alert_and_its_recovery_resolves_it(
    gw: AdminGateway, receiver: Receiver
) -> None:
    gw.mock.options.forced_status = 503
    for _ in range(6):
        assert gw.chat("dave", "hi").status_code >= 500
    # Degraded (a warning) after the first failures, then critical once its circuit opens:
    # under load the warning can be read before the upgrade.
    _wait(lambda: [a.severity for a in _alerts(gw, alert_kind="provider_health")] == ["critical"])
    [down] = _alerts(gw, alert_kind="provider_health")
    assert (down.scope, down.severity, down.state.value) == ("provider:alpha", "critical", "open")
    gw.mock.options.forced_status = None
    time.sleep(5.5)  # the circuit's cooldown: the next call is its probe
    gw.mock.options.output_tokens = 1
    deadline = time.monotonic() + 30
    while _alerts(gw, alert_kind="provider_health")[0].state.value != "resolved":
        assert time.monotonic() < deadline, "the provider alert never resolved"
        gw.chat("ops", "hi")  # successes bring the error rate down
    resolved = receiver.wait_for(lambda got: any(r.event == "alert.resolved" for r in got))
    [note] = [r for r in resolved if r.event == "alert.resolved"]
    assert note.json["alert"]["id"] == down.id
    assert note.json["alert"]["state"] == "resolved"


def test_a_receiver_failing_then_answering_gets_the_same_delivery_id(
    gw: AdminGateway, receiver: Receiver
) -> None:
    receiver.statuses = [500, 502, 500, 502]
    gw.mock.options.output_tokens = 100
    # Opens a threshold alert, and a forecast one too early in the (UTC) day: one or two
    # deliveries, which share the four failures.
    _spend_past(gw, 300)

    def all_delivered(got: list[Received]) -> bool:
        ids = {r.delivery_id for r in got}
        return len(got) >= 5 and all(any(r.status == 200 for r in got if r.delivery_id == i)
                                     for i in ids)  # fmt: skip

    got = receiver.wait_for(all_delivered)
    deliveries = {r.delivery_id for r in got}
    for delivery in deliveries:
        tries = [r for r in got if r.delivery_id == delivery]
        assert len(tries) >= 2
        assert tries[-1].status == 200
    attempts = _threshold_openings(got)
    assert len({r.delivery_id for r in attempts}) == 1
    assert len({r.body for r in attempts}) == 1
    assert all(_signed(r.body, r.headers["x-spendgate-signature"]) for r in attempts)
    metrics = httpx.get(gw.url + "/metrics").text
    assert 'spendgate_webhook_deliveries_total{outcome="retry"} 4.0' in metrics
    assert (
        f'spendgate_webhook_deliveries_total{{outcome="delivered"}} {len(deliveries)}.0' in metrics
    )
    assert 'spendgate_alerts_open{kind="budget_threshold",severity="warning"} 1.0' in metrics


def test_once_caught_up_the_alerts_of_every_request_so_far_are_written(gw: AdminGateway) -> None:
    """What ``spendgate demo`` waits for before listing the alerts its traffic raised: not
    the first alert, which a pass between two refusals opens without the second's."""
    gw.mock.options.output_tokens = 100
    _spend_past(gw, 300)
    # Refused (its worst case does not fit): the detector is told before the answer leaves.
    assert gw.chat("alice", "hi", max_tokens=2000).status_code == 403
    _wait(_caught_up(gw))
    [refused] = _alerts(gw, alert_kind="budget_exhausted")
    assert refused.summary.endswith("refused a request (worst case over limit)")
    assert refused.scope == "project:acme"


def test_a_receiver_refusing_with_4xx_is_not_retried(gw: AdminGateway, receiver: Receiver) -> None:
    receiver.statuses = [410]
    gw.mock.options.output_tokens = 100
    _spend_past(gw, 300)
    got = receiver.wait_for(lambda got: any(r.status == 410 for r in got))
    [refused] = [r for r in got if r.status == 410]
    time.sleep(1.0)  # well past the first retry's delay
    assert [r.status for r in receiver.received if r.delivery_id == refused.delivery_id] == [410]
    journal = gw.served.journal
    assert journal is not None
    delivery = journal.outbox.get(refused.delivery_id)
    assert delivery is not None
    assert (delivery.state.value, delivery.attempts, delivery.last_status) == ("failed", 1, 410)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_delivery_pending_at_shutdown_is_sent_after_the_restart(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there during the first run
    url = f"http://127.0.0.1:{port}/hook"
    with admin_gateway(tmp_path, _config(url), ENV) as first:
        first.mock.options.output_tokens = 100
        _spend_past(first, 300)
        _wait(lambda: bool(_alerts(first, alert_kind="budget_threshold")))
        journal = first.served.journal
        assert journal is not None
        [alert] = _alerts(first, alert_kind="budget_threshold")
        _wait(lambda: any(d.attempts >= 1 for d in journal.outbox.for_subject(alert.id)))
        [pending] = [d for d in journal.outbox.for_subject(alert.id) if d.webhook_id == "ops-hook"]
        assert pending.state.value == "pending"
    with webhook_receiver(port) as receiver, admin_gateway(tmp_path, _config(url), ENV):
        got = receiver.wait_for(lambda got: any(r.delivery_id == pending.id for r in got))
        [sent] = [r for r in got if r.delivery_id == pending.id]
        assert sent.json["alert"]["id"] == alert.id
        assert _signed(sent.body, sent.headers["x-spendgate-signature"])


def _doc_receiver() -> str:
    text = (Path(__file__).parents[1] / "docs" / "alerts.md").read_text()
    section = text.split("### A receiver that checks the signature", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_documented_receiver_accepts_deliveries_and_refuses_forgeries(tmp_path: Path) -> None:
    script = tmp_path / "receiver.py"
    script.write_text(_doc_receiver())
    port = _free_port()
    environ = {**os.environ, "SPENDGATE_HOOK_SECRET": SECRET, "PORT": str(port)}
    receiver = subprocess.Popen(
        [sys.executable, "-u", str(script)], env=environ, stdout=subprocess.PIPE, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}/hook"
        _wait(lambda: _listening(port))
        forged = httpx.post(url, content=b"{}", headers={"x-spendgate-signature": "sha256=00"})
        assert forged.status_code == 401
        with admin_gateway(tmp_path, _config(url), ENV) as gw:
            gw.mock.options.output_tokens = 100
            _spend_past(gw, 300)
            assert receiver.stdout is not None
            line = receiver.stdout.readline()
            assert line.startswith("alert.opened {")
    finally:
        receiver.terminate()
        receiver.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
