"""The alerts admin API and ``spendgate alerts``, against a real gateway: listing and filters,
one alert with its deliveries, acknowledging, and tenant isolation (a key never reads or
acknowledges another tenant's alert, nor the admins' own)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from admin_support import AdminGateway, admin_gateway
from spendgate.store import Alert
from spendgate.store.outbox import OutboxItem


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("alerts")) as running:
        yield running


def raise_alert(
    gw: AdminGateway,
    key: str,
    *,
    kind: str = "cost_spike",
    severity: str = "warning",
    tenant: str | None = "project:acme",
    scope: str = "project:acme",
    ago: timedelta = timedelta(0),
) -> Alert:
    journal = gw.served.journal
    assert journal is not None
    alert, _ = journal.alerts.upsert(
        alert_kind=kind,
        severity=severity,
        scope=scope,
        summary=f"{kind} under {scope} ({key})",
        reason="A request cost $3.10, 31x the usual $0.10.",
        recommended_action="Look at the request.",
        dedupe_key=f"test|{key}",
        tenant=tenant,
        now=datetime.now(UTC) - ago,
    )
    return alert


def test_list_filter_and_show_with_deliveries(gw: AdminGateway) -> None:
    spike = raise_alert(gw, "list-spike", ago=timedelta(seconds=2))
    provider = raise_alert(
        gw, "list-provider", kind="provider_health", severity="critical", tenant=None,
        scope="provider:alpha",
    )  # fmt: skip
    journal = gw.served.journal
    assert journal is not None
    journal.outbox.add([OutboxItem("ops-hook", "alert.opened", spike.id, b'{"a": 1}')])
    listed = gw.get("/alerts").json()["data"]
    ids = [alert["id"] for alert in listed]
    assert ids.index(provider.id) < ids.index(spike.id)  # most recently seen first
    critical = gw.get("/alerts", params={"severity": "critical"}).json()["data"]
    assert provider.id in {a["id"] for a in critical}
    assert spike.id not in {a["id"] for a in critical}
    by_kind = gw.get("/alerts", params={"kind": "cost_spike", "state": "open"}).json()["data"]
    assert spike.id in {a["id"] for a in by_kind}
    assert all(a["kind"] == "cost_spike" for a in by_kind)
    assert gw.get("/alerts", params={"kind": "nonsense"}).status_code == 422
    assert gw.get("/alerts", params={"state": "closed"}).status_code == 422
    shown = gw.get(f"/alerts/{spike.id}").json()
    assert shown["kind"] == "cost_spike"
    assert shown["occurrences"] == 1
    [delivery] = shown["deliveries"]
    assert (delivery["webhook_id"], delivery["event"], delivery["state"]) == (
        "ops-hook",
        "alert.opened",
        "pending",
    )
    assert "body" not in delivery
    assert gw.get("/alerts/alr_missing").status_code == 404


def test_a_key_reads_its_own_tenants_alerts_only(gw: AdminGateway) -> None:
    acme = raise_alert(gw, "iso-acme")
    globex = raise_alert(gw, "iso-globex", tenant="project:globex", scope="project:globex")
    admins = raise_alert(gw, "iso-admins", kind="unpriced_model", tenant=None, scope="model:x")
    for key, own, others in (
        ("alice", acme, (globex, admins)),
        ("dave", globex, (acme, admins)),
    ):
        token = gw.secrets[key]
        seen = {a["id"] for a in gw.get("/alerts", token=token).json()["data"]}
        assert own.id in seen
        assert not seen & {other.id for other in others}
        assert gw.get(f"/alerts/{own.id}", token=token).status_code == 200
        for other in others:
            assert gw.get(f"/alerts/{other.id}", token=token).status_code == 404
            assert gw.post(f"/alerts/{other.id}/ack", token=token).status_code == 404
    solo = {a["id"] for a in gw.get("/alerts", token=gw.secrets["solo"]).json()["data"]}
    assert not solo & {acme.id, globex.id, admins.id}
    assert gw.get("/alerts", token=None).status_code == 401


def test_acknowledging(gw: AdminGateway) -> None:
    alert = raise_alert(gw, "ack")
    plain = gw.post(f"/alerts/{alert.id}/ack", token=gw.secrets["alice"])
    assert plain.status_code == 403
    assert "approver" in plain.json()["error"]["message"]
    acked = gw.post(f"/alerts/{alert.id}/ack", token=gw.secrets["approver"])
    assert acked.status_code == 200, acked.text
    assert (acked.json()["state"], acked.json()["acknowledged_by"]) == ("acknowledged", "approver")
    again = gw.post(f"/alerts/{alert.id}/ack")  # idempotent, and keeps who acknowledged
    assert again.status_code == 200
    assert again.json()["acknowledged_by"] == "approver"
    journal = gw.served.journal
    assert journal is not None
    assert journal.alerts.resolve(alert.id)
    resolved = gw.post(f"/alerts/{alert.id}/ack")
    assert resolved.status_code == 409
    assert "resolved" in resolved.json()["error"]["message"]


def test_the_alerts_commands(gw: AdminGateway) -> None:
    alert = raise_alert(gw, "cli", severity="critical")
    journal = gw.served.journal
    assert journal is not None
    journal.outbox.add([OutboxItem("slack", "alert.opened", alert.id, b"{}")])
    listed = gw.cli("alerts", "list", "--severity", "critical", columns=80)
    assert listed.returncode == 0, listed.stderr
    assert alert.id in listed.stdout
    assert all(len(line) <= 80 for line in listed.stdout.splitlines())
    as_json = json.loads(gw.cli("alerts", "list", "--json").stdout)
    assert as_json == gw.get("/alerts").json()
    shown = gw.cli("alerts", "show", alert.id)
    assert shown.returncode == 0, shown.stderr
    assert f"Alert {alert.id}: open, critical cost_spike" in shown.stdout
    assert "Why: A request cost $3.10" in shown.stdout
    assert "slack" in shown.stdout
    acked = gw.cli("alerts", "ack", alert.id)
    assert acked.returncode == 0, acked.stderr
    assert f"Alert {alert.id} is acknowledged (by admin-token)." in acked.stdout
    detail = json.loads(gw.cli("alerts", "show", alert.id, "--json").stdout)
    assert detail["state"] == "acknowledged"
    missing = gw.cli("alerts", "ack", "alr_nope")
    assert missing.returncode == 1
    assert "alr_nope" in missing.stderr
