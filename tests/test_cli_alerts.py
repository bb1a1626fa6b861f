"""``spendgate alerts list|show|ack`` in a subprocess against a real gateway: tables that fit
80 columns, ``--json`` as the API answers, the chosen time zone, and errors on stderr."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from admin_support import AdminGateway, admin_gateway
from alert_support import add_delivery, raise_alert


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("cli-alerts")) as running:
        yield running


def fits(output: str, columns: int = 80) -> None:
    assert all(len(line) <= columns for line in output.splitlines()), output


def test_list(gw: AdminGateway) -> None:
    critical = raise_alert(gw, "cli-list-critical", severity="critical")
    warning = raise_alert(gw, "cli-list-warning", kind="budget_threshold")
    listed = gw.cli("alerts", "list", "--severity", "critical", columns=80)
    assert listed.returncode == 0, listed.stderr
    fits(listed.stdout)
    assert critical.id in listed.stdout
    assert warning.id not in listed.stdout
    assert "critical" in listed.stdout
    wide = gw.cli("--utc", "alerts", "list", "--kind", "budget_threshold", "--state", "open")
    assert wide.returncode == 0, wide.stderr
    assert "alerts (times in UTC)" in wide.stdout
    assert warning.id in wide.stdout
    assert critical.id not in wide.stdout
    row = next(line for line in wide.stdout.splitlines() if warning.id in line)
    assert "budget_threshold" in row
    assert "project:acme" in row
    assert row.split("┃" if "┃" in row else "│")[5].strip() == "1"  # occurrences
    as_json = json.loads(gw.cli("alerts", "list", "--json").stdout)
    assert as_json == gw.get("/alerts").json()
    assert len(json.loads(gw.cli("alerts", "list", "--limit", "1", "--json").stdout)["data"]) == 1
    refused = gw.cli("alerts", "list", "--state", "closed")
    assert refused.returncode == 1
    assert "state" in refused.stderr


def test_show(gw: AdminGateway) -> None:
    alert = raise_alert(gw, "cli-show", severity="critical")
    add_delivery(gw, alert, "slack", "alert.opened", failed=503)
    shown = gw.cli("--time", "utc", "alerts", "show", alert.id, columns=80)
    assert shown.returncode == 0, shown.stderr
    fits(shown.stdout)
    assert f"Alert {alert.id}: open, critical cost_spike" in shown.stdout
    assert "Why: A request cost $3.10" in shown.stdout
    assert "Action: Look at the request." in shown.stdout
    assert "(times in UTC)" in shown.stdout
    assert ", 1 time(s) in all" in shown.stdout
    delivery = next(line for line in shown.stdout.splitlines() if "slack" in line)
    assert "alert.opened" in delivery
    assert "failed" in delivery
    assert "HTTP 503" in shown.stdout
    detail = json.loads(gw.cli("alerts", "show", alert.id, "--json").stdout)
    assert detail == gw.get(f"/alerts/{alert.id}").json()
    bracketed = raise_alert(gw, "cli-show-markup", reason="Spend of [acme] rose [/] fast.")
    assert "Why: Spend of [acme] rose [/] fast." in gw.cli("alerts", "show", bracketed.id).stdout
    missing = gw.cli("alerts", "show", "alr_nope")
    assert missing.returncode == 1
    assert "alr_nope" in missing.stderr


def test_ack(gw: AdminGateway) -> None:
    alert = raise_alert(gw, "cli-ack")
    refused = gw.cli("alerts", "ack", alert.id, token=gw.secrets["alice"])
    assert refused.returncode == 1
    assert "approver" in refused.stderr
    acked = gw.cli("alerts", "ack", alert.id, token=gw.secrets["approver"])
    assert acked.returncode == 0, acked.stderr
    assert f"Alert {alert.id} is acknowledged (by approver)." in acked.stdout
    again = json.loads(gw.cli("alerts", "ack", alert.id, "--json").stdout)
    assert (again["state"], again["acknowledged_by"]) == ("acknowledged", "approver")
    shown = gw.cli("alerts", "show", alert.id)
    assert "Acknowledged by approver at" in shown.stdout
    other = raise_alert(gw, "cli-ack-globex", tenant="project:globex", scope="project:globex")
    hidden = gw.cli("alerts", "ack", other.id, token=gw.secrets["approver"])
    assert hidden.returncode == 1
    assert other.id in hidden.stderr
