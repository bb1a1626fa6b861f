"""Alerts: deduplicated by key while unresolved, counted, concurrent-safe."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from postgres_support import throwaway_postgres
from spendgate.store import Alert, AlertState, Journal

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    """Each test on SQLite and on PostgreSQL (skipped, saying why, without a server)."""
    if request.param == "sqlite":
        with Journal(f"sqlite:///{tmp_path / 'alerts.db'}") as opened:
            yield opened
        return
    with throwaway_postgres() as url, Journal(url) as opened:
        yield opened


def raise_alert(journal: Journal, at: datetime, severity: str = "warning", **extra: Any) -> Alert:
    fields: dict[str, Any] = {
        "alert_kind": "budget_threshold",
        "severity": severity,
        "scope": "project:acme",
        "summary": "acme-daily at 80%",
        "reason": "8.00 of 10.00 used",
        "recommended_action": "raise the limit or slow down",
        "dedupe_key": "budget_threshold:acme-daily:2026-05-01:0.8",
    }
    fields.update(extra)
    alert, _ = journal.alerts.upsert(now=at, **fields)
    return alert


def test_repeats_increment_occurrences(journal: Journal) -> None:
    first = raise_alert(journal, NOW)
    raise_alert(journal, NOW + timedelta(minutes=1))
    last = raise_alert(journal, NOW + timedelta(minutes=2), severity="critical")
    assert last.id == first.id
    assert last.occurrences == 3
    assert (last.first_seen, last.last_seen) == (NOW, NOW + timedelta(minutes=2))
    assert last.severity == "critical"
    assert journal.alerts.list_alerts() == [last]


def test_acknowledged_alert_keeps_absorbing_repeats(journal: Journal) -> None:
    alert = raise_alert(journal, NOW)
    assert journal.alerts.acknowledge(alert.id, "ops", now=NOW) is True
    assert journal.alerts.acknowledge(alert.id, "ops", now=NOW) is False
    again = raise_alert(journal, NOW + timedelta(minutes=5))
    assert again.id == alert.id
    assert (again.state, again.occurrences, again.acknowledged_by) == (
        AlertState.ACKNOWLEDGED,
        2,
        "ops",
    )


def test_after_resolution_a_repeat_opens_a_new_alert(journal: Journal) -> None:
    old = raise_alert(journal, NOW)
    assert journal.alerts.resolve(old.id, now=NOW) is True
    assert journal.alerts.resolve(old.id, now=NOW) is False
    new, created = journal.alerts.upsert(
        alert_kind=old.alert_kind,
        severity="warning",
        scope=old.scope,
        summary=old.summary,
        reason=old.reason,
        recommended_action=old.recommended_action,
        dedupe_key=old.dedupe_key,
        now=NOW + timedelta(hours=1),
    )
    assert created
    assert new.id != old.id
    assert new.occurrences == 1
    assert [a.state for a in journal.alerts.list_alerts()] == [
        AlertState.OPEN,
        AlertState.RESOLVED,
    ]
    assert journal.alerts.resolve_key(old.dedupe_key) is True
    assert journal.alerts.list_alerts(state=AlertState.OPEN) == []


def test_concurrent_evaluators_share_one_alert(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    journals = [Journal(url) for _ in range(3)]
    start = threading.Barrier(12)

    def fire(journal: Journal) -> None:
        start.wait()
        for _ in range(5):
            raise_alert(journal, NOW)

    threads = [threading.Thread(target=fire, args=(journals[i % 3],)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (alert,) = journals[0].alerts.list_alerts()
    assert alert.occurrences == 60
    for journal in journals:
        journal.close()


def test_listing_filters(journal: Journal) -> None:
    raise_alert(journal, NOW)
    raise_alert(journal, NOW, dedupe_key="spike", alert_kind="cost_spike", scope="principal:bob")
    assert [a.dedupe_key for a in journal.alerts.list_alerts(alert_kind="cost_spike")] == ["spike"]
    assert [a.alert_kind for a in journal.alerts.list_alerts(scope="project:acme")] == [
        "budget_threshold"
    ]
    assert journal.alerts.get("alr_missing") is None


def test_finished_deliveries_are_pruned_and_pending_ones_kept(journal: Journal) -> None:
    from spendgate.store.outbox import OutboxItem
    from spendgate.store.records import DeliveryState

    journal.outbox.add(
        [OutboxItem("hook", "alert.opened", f"alr_{n}", b"{}") for n in range(3)], now=NOW
    )
    first, second, third = journal.outbox.due(NOW)
    journal.outbox.record_attempt(first.id, state=DeliveryState.DELIVERED, status=200,
                                  error=None, now=NOW)  # fmt: skip
    journal.outbox.record_attempt(second.id, state=DeliveryState.FAILED, status=410,
                                  error="HTTP 410", now=NOW + timedelta(days=2))  # fmt: skip
    assert journal.outbox.prune(NOW + timedelta(days=1)) == 1
    assert journal.outbox.get(first.id) is None
    assert journal.outbox.get(second.id) is not None
    assert journal.outbox.counts() == {"failed": 1, "pending": 1}
    assert journal.outbox.prune(NOW + timedelta(days=30)) == 1
    assert [d.id for d in journal.outbox.due(NOW + timedelta(days=30))] == [third.id]


def test_pending_work_says_what_an_idle_notifier_needs_in_one_query(journal: Journal) -> None:
    from spendgate.store.outbox import OutboxItem

    journal.outbox.start_relay()
    assert journal.outbox.pending_work() == (False, None)
    journal.outbox.add([OutboxItem("hook", "alert.opened", "alr_1", b"{}")], now=NOW)
    assert journal.outbox.pending_work() == (False, NOW)
    journal.approvals.create_or_get_pending("usage-budget:b", "alice", now=NOW)
    assert journal.outbox.pending_work() == (True, NOW)
    assert journal.outbox.relay_approval_events(lambda a, e: ()) == 1
    assert journal.outbox.pending_work() == (False, NOW)


def test_a_due_delivery_is_claimed_by_one_notifier_and_due_again_if_never_recorded(
    journal: Journal,
) -> None:
    from spendgate.store.outbox import OutboxItem
    from spendgate.store.records import DeliveryState

    journal.outbox.add([OutboxItem("hook", "alert.opened", "alr_1", b"{}")], now=NOW)
    (delivery,) = journal.outbox.due(NOW)
    until = NOW + timedelta(seconds=40)
    # Two notifiers see it due; one attempt is sent.
    assert journal.outbox.claim(delivery.id, until=until, now=NOW)
    assert not journal.outbox.claim(delivery.id, until=until, now=NOW)
    assert journal.outbox.due(NOW + timedelta(seconds=39)) == []
    # Its process died before recording the attempt: due again once the claim lapses.
    assert [d.id for d in journal.outbox.due(until)] == [delivery.id]
    assert journal.outbox.claim(delivery.id, until=until + timedelta(seconds=40), now=until)
    journal.outbox.record_attempt(delivery.id, state=DeliveryState.DELIVERED, status=200,
                                  error=None, now=until)  # fmt: skip
    assert not journal.outbox.claim(delivery.id, until=until + timedelta(days=1), now=until)
