"""The alerts admin API against a real gateway: listing and filters, one alert with its
deliveries, acknowledging, and tenant isolation (a key never reads or acknowledges another
tenant's alert, nor the admins' own)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from admin_support import AdminGateway, admin_gateway
from alert_support import add_delivery, raise_alert, resolve


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("alerts")) as running:
        yield running


def ids(gw: AdminGateway, token: object = None, **params: str | int) -> list[str]:
    options = {} if token is None else {"token": token}
    reply = gw.get("/alerts", params=params, **options)
    assert reply.status_code == 200, reply.text
    return [alert["id"] for alert in reply.json()["data"]]


def test_list_newest_first_with_every_field(gw: AdminGateway) -> None:
    older = raise_alert(gw, "order-older", ago=timedelta(seconds=5))
    newer = raise_alert(gw, "order-newer", ago=timedelta(seconds=1))
    listed = ids(gw)
    assert listed.index(newer.id) < listed.index(older.id)
    assert ids(gw, limit=1) == [listed[0]]
    [shown] = [a for a in gw.get("/alerts").json()["data"] if a["id"] == newer.id]
    assert set(shown) == {
        "id", "kind", "severity", "state", "scope", "tenant", "summary", "reason",
        "recommended_action", "occurrences", "first_seen", "last_seen", "acknowledged_by",
        "acknowledged_at", "resolved_at", "announced_at",
    }  # fmt: skip
    assert (shown["kind"], shown["severity"], shown["state"]) == ("cost_spike", "warning", "open")
    assert (shown["scope"], shown["tenant"], shown["occurrences"]) == (
        "project:acme",
        "project:acme",
        1,
    )
    assert shown["reason"] == "A request cost $3.10, 31x the usual $0.10."
    assert shown["acknowledged_by"] is None


def test_filters(gw: AdminGateway) -> None:
    spike = raise_alert(gw, "filter-spike")
    provider = raise_alert(
        gw, "filter-provider", kind="provider_health", severity="critical", tenant=None,
        scope="provider:alpha",
    )  # fmt: skip
    gone = raise_alert(gw, "filter-gone", kind="budget_threshold", severity="info")
    resolve(gw, gone)
    critical = ids(gw, severity="critical")
    assert provider.id in critical
    assert spike.id not in critical
    spikes = ids(gw, kind="cost_spike", state="open")
    assert spike.id in spikes
    assert provider.id not in spikes
    resolved = ids(gw, state="resolved")
    assert gone.id in resolved
    assert spike.id not in resolved
    assert ids(gw, kind="budget_threshold", state="open", severity="info") == []
    for name, value in (("kind", "nonsense"), ("state", "closed"), ("severity", "fatal")):
        refused = gw.get("/alerts", params={name: value})
        assert refused.status_code == 422, refused.text
        assert name in refused.text
    assert gw.get("/alerts", params={"limit": 0}).status_code == 422


def test_one_alert_with_its_deliveries(gw: AdminGateway) -> None:
    alert = raise_alert(gw, "show")
    pending = add_delivery(gw, alert, "ops-hook", "alert.opened")
    failed = add_delivery(gw, alert, "slack", "alert.opened", failed=500)
    shown = gw.get(f"/alerts/{alert.id}")
    assert shown.status_code == 200, shown.text
    detail = shown.json()
    assert detail["kind"] == "cost_spike"
    deliveries = {d["id"]: d for d in detail["deliveries"]}
    assert set(deliveries) == {pending.id, failed.id}
    assert set(deliveries[pending.id]) == {
        "id",
        "webhook_id",
        "event",
        "state",
        "attempts",
        "last_status",
        "last_error",
        "next_attempt_at",
        "created_at",
        "finished_at",
    }  # fmt: skip  (never the body nor anything the receiver was sent)
    assert (deliveries[pending.id]["state"], deliveries[pending.id]["attempts"]) == ("pending", 0)
    gave_up = deliveries[failed.id]
    assert (gave_up["webhook_id"], gave_up["state"], gave_up["attempts"]) == ("slack", "failed", 1)
    assert (gave_up["last_status"], gave_up["last_error"]) == (500, "HTTP 500")
    assert gave_up["finished_at"] is not None
    assert gw.get("/alerts/alr_missing").status_code == 404
    assert gw.post("/alerts/alr_missing/ack").status_code == 404


def test_a_key_reads_its_own_tenants_alerts_only(gw: AdminGateway) -> None:
    acme = raise_alert(gw, "iso-acme")
    globex = raise_alert(gw, "iso-globex", tenant="project:globex", scope="project:globex")
    solo = raise_alert(gw, "iso-solo", tenant="principal:solo", scope="principal:solo")
    admins = raise_alert(gw, "iso-admins", kind="unpriced_model", tenant=None, scope="model:x")
    everyone = {acme.id, globex.id, solo.id, admins.id}
    for key, own in (("alice", acme), ("approver", acme), ("dave", globex), ("solo", solo)):
        token = gw.secrets[key]
        assert set(ids(gw, token)) & everyone == {own.id}, key
        assert gw.get(f"/alerts/{own.id}", token=token).status_code == 200
        for other in everyone - {own.id}:
            assert gw.get(f"/alerts/{other}", token=token).status_code == 404, (key, other)
            assert gw.post(f"/alerts/{other}/ack", token=token).status_code == 404, (key, other)
    assert not set(ids(gw, gw.secrets["lone"])) & everyone
    assert set(ids(gw, gw.secrets["ops"])) >= everyone  # an admin key reads every alert
    assert gw.get("/alerts", token=None).status_code == 401
    assert gw.get(f"/alerts/{acme.id}", token="sg-wrong").status_code == 401
    assert gw.get(f"/alerts/{acme.id}").json()["state"] == "open"  # none of that acknowledged


def test_acknowledging(gw: AdminGateway) -> None:
    alert = raise_alert(gw, "ack")
    plain = gw.post(f"/alerts/{alert.id}/ack", token=gw.secrets["alice"])
    assert plain.status_code == 403
    assert "approver" in plain.json()["error"]["message"]
    acked = gw.post(f"/alerts/{alert.id}/ack", token=gw.secrets["approver"])
    assert acked.status_code == 200, acked.text
    body = acked.json()
    assert (body["state"], body["acknowledged_by"]) == ("acknowledged", "approver")
    assert body["acknowledged_at"] is not None
    assert body["deliveries"] == []
    again = gw.post(f"/alerts/{alert.id}/ack")  # idempotent, and keeps who acknowledged
    assert again.status_code == 200
    assert again.json() == body
    resolve(gw, alert)
    refused = gw.post(f"/alerts/{alert.id}/ack")
    assert refused.status_code == 409
    assert "resolved" in refused.json()["error"]["message"]


def test_admins_acknowledge_every_alert(gw: AdminGateway) -> None:
    provider = raise_alert(
        gw, "ack-provider", kind="provider_health", severity="critical", tenant=None,
        scope="provider:beta",
    )  # fmt: skip
    globex = raise_alert(gw, "ack-globex", tenant="project:globex", scope="project:globex")
    by_key = gw.post(f"/alerts/{provider.id}/ack", token=gw.secrets["ops"])
    assert (by_key.status_code, by_key.json()["acknowledged_by"]) == (200, "ops")
    by_token = gw.post(f"/alerts/{globex.id}/ack")
    assert (by_token.status_code, by_token.json()["acknowledged_by"]) == (200, "admin-token")
    assert set(ids(gw, state="acknowledged")) >= {provider.id, globex.id}
