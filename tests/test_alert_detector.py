"""The alert detector over hours of synthetic time: a real Governor (in-memory ledger) feeds it
through its observer, and each pass is given its clock, as the service gives it the wall's.

The gateway-level tests (test_alerts.py) cover what happens in seconds; these cover the rules
that need history or a cooldown: spend-rate anomalies, forecasts that stay until their window
ends, spikes and unpriced models that resolve once quiet, and a restart taking over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendgate.alerting import AlertDetector
from spendgate.config import parse_config
from spendgate.domain.alerts import AlertKind
from spendgate.domain.health import HealthBoard
from spendgate.domain.pricing import Usage
from spendgate.domain.scopes import RequestScopes
from spendgate.governor import Governor
from spendgate.store.records import Alert, AlertState

CONFIG = """
providers:
  - {id: alpha, kind: mock}
models:
  - {id: gpt-4o, provider: alpha}
budgets:
  - {id: acme-daily, scope: {kind: project, id: acme}, metric: usd, interval: daily,
     hard_limit: 100, alert_thresholds: [0.5]}
alerts: {cost_spike_usd: 0.5, cooldown: 15m}
"""
ACME = RequestScopes(project="acme", principal="alice", api_key="alice-key")
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday midnight


def setup() -> tuple[Governor, AlertDetector, HealthBoard]:
    config = parse_config(CONFIG, "test.yaml")
    governor = Governor.from_config(config)
    health = HealthBoard(["alpha"])
    detector = AlertDetector(governor, health, config.alerts, lambda key_id: None)
    governor.observer = detector
    return governor, detector, health


def spend(
    governor: Governor, at: datetime, output_tokens: int, scopes: RequestScopes = ACME
) -> Decimal:
    """One request at ``at`` settled with ``output_tokens`` on gpt-4o ($10 per million)."""
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    decision = governor.plan(body, scopes, now=at)
    assert governor.reserve(decision, at).ok
    cost = governor.settle(decision, Usage(input_tokens=0, output_tokens=output_tokens))
    assert cost is not None
    return cost


def kinds(findings_seen: list[object]) -> list[str]:
    return [seen.condition.kind.value for seen in findings_seen]  # type: ignore[attr-defined]


def test_a_spike_resolves_once_quiet_for_a_cooldown() -> None:
    governor, detector, _ = setup()
    for minute in range(5):
        spend(governor, START + timedelta(minutes=minute), 10_000)  # $0.10
    spend(governor, START + timedelta(minutes=6), 100_000)  # $1.00: 10x the median
    findings = detector.evaluate(START + timedelta(minutes=6), full=True)
    assert kinds(findings.seen) == ["cost_spike"]
    [spike] = findings.seen
    assert spike.condition.summary == ("A request under project:acme cost $1, 10× the usual $0.1")
    assert spike.tenant == "project:acme"
    assert not detector.evaluate(START + timedelta(minutes=20), full=True).cleared
    later = detector.evaluate(START + timedelta(minutes=22), full=True)
    assert later.cleared == [spike.condition.dedupe_key]


def test_an_hour_far_above_the_baseline_is_an_anomaly_until_it_calms_down() -> None:
    governor, detector, _ = setup()
    for hour in range(8):  # ~$1 an hour, a little uneven
        at = START + timedelta(hours=hour)
        for request in range(4):
            spend(governor, at + timedelta(minutes=10 * request), 25_000 + 1_000 * (hour % 3))
        findings = detector.evaluate(at + timedelta(minutes=50), full=True)
        assert AlertKind.SPEND_RATE_ANOMALY.value not in kinds(findings.seen)
    burst = START + timedelta(hours=8)
    for request in range(12):  # $12 in twenty minutes
        spend(governor, burst + timedelta(minutes=request), 100_000)
    findings = detector.evaluate(burst + timedelta(minutes=20), full=True)
    [anomaly] = [s for s in findings.seen if s.condition.kind is AlertKind.SPEND_RATE_ANOMALY]
    assert anomaly.condition.scope == "project:acme"
    # Spend counts when a pass sees it: the burst, and hour 7's ($1.04) seen at 07:50.
    assert "spent $13.04 in the last hour" in anomaly.condition.summary
    # The hour is still high 30 minutes later: it holds, without opening again.
    still = detector.evaluate(burst + timedelta(minutes=50), full=True)
    assert anomaly.condition.dedupe_key not in still.cleared
    assert AlertKind.SPEND_RATE_ANOMALY.value not in kinds(still.seen)
    calm = detector.evaluate(burst + timedelta(minutes=90), full=True)
    assert anomaly.condition.dedupe_key in calm.cleared


def test_a_forecast_stays_until_the_budget_is_exhausted() -> None:
    governor, detector, _ = setup()
    morning = START + timedelta(hours=6)
    for request in range(30):  # $30 by 06:00: $100 at 20:00, before midnight
        spend(governor, morning - timedelta(minutes=request), 100_000)
    findings = detector.evaluate(morning, full=True)
    [forecast] = [s for s in findings.seen if s.condition.kind is AlertKind.FORECAST_EXHAUSTION]
    assert "will run out around 2026-03-02 20:00 UTC" in forecast.condition.summary
    # Hours pass without spending: the pace drops, the forecast holds for its window.
    quiet = detector.evaluate(START + timedelta(hours=12), full=True)
    assert forecast.condition.dedupe_key not in quiet.cleared
    for request in range(71):
        spend(governor, START + timedelta(hours=13, minutes=request % 60), 100_000)
    exhausted = detector.evaluate(START + timedelta(hours=14), full=True)
    assert AlertKind.BUDGET_EXHAUSTED.value in kinds(exhausted.seen)
    assert forecast.condition.dedupe_key in exhausted.cleared
    # The next day's window: the old window's alerts resolve.
    tomorrow = detector.evaluate(START + timedelta(days=1, hours=1), full=True)
    assert {c.split("|")[0] for c in tomorrow.cleared} == {
        "budget_threshold",
        "budget_exhausted",
    }


def test_requests_between_passes_count_as_occurrences() -> None:
    governor, detector, _ = setup()
    for minute in range(60):
        spend(governor, START + timedelta(hours=9, minutes=minute), 100_000)
    findings = detector.evaluate(START + timedelta(hours=10), full=False)
    [threshold] = [s for s in findings.seen if s.condition.kind is AlertKind.BUDGET_THRESHOLD]
    # One condition, counted for each request planned with the threshold passed: $50 was
    # passed by the 50th (its bound, max_tokens 1, was far below what this test settles).
    assert threshold.occurrences == 10
    assert detector.open_alerts()[("budget_threshold", "warning")] == 1


def test_a_restart_takes_over_open_alerts() -> None:
    _, detector, _ = setup()
    provider = Alert(
        id="alr_1", alert_kind="provider_health", severity="critical", scope="provider:alpha",
        summary="", reason="", recommended_action="", dedupe_key="provider_health|alpha",
        occurrences=3, first_seen=START, last_seen=START, state=AlertState.OPEN,
    )  # fmt: skip
    detector.resume([provider])
    # Healthy (no calls): cleared only after three steady observations, never opened twice.
    passes = [detector.evaluate(START + timedelta(seconds=15 * n), full=True) for n in range(3)]
    assert [p.cleared for p in passes] == [[], [], ["provider_health|alpha"]]
    assert all(not p.seen for p in passes)


def test_a_full_queue_drops_the_oldest_and_counts_them() -> None:
    governor, _, _ = setup()
    config = parse_config(CONFIG, "test.yaml")
    small = AlertDetector(governor, HealthBoard(), config.alerts, lambda key: None, max_queued=3)
    governor.observer = small
    for minute in range(5):
        spend(governor, START + timedelta(minutes=minute), 1_000)
    assert (small.pending, small.dropped) == (3, 2)
