"""``spendgate approvals`` as an operator and a requester use it, against a real gateway: a
blocked request shows up, is inspected, cannot be approved by its requester, is approved by an
approver and lets the retry through; another is denied; a request is asked ahead."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from admin_support import AdminGateway, admin_gateway
from test_approvals import BIG, CONFIG, ENV, chat


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path, CONFIG, ENV) as running:
        yield running


def test_the_approval_flow_from_the_command_line(gw: AdminGateway) -> None:
    blocked = chat(gw, "carol")
    assert blocked.status_code == 403
    approval_id = blocked.json()["error"]["approval_id"]

    listed = gw.cli("approvals", "list", "--state", "pending")
    assert listed.returncode == 0, listed.stderr
    assert approval_id in listed.stdout
    assert "acme-tokens" in listed.stdout
    as_json = json.loads(gw.cli("approvals", "list", "--json").stdout)
    assert as_json == gw.get("/approvals").json()

    shown = gw.cli("approvals", "show", approval_id)
    assert shown.returncode == 0, shown.stderr
    assert f"Approval {approval_id}: pending" in shown.stdout
    assert "gpt-4o-mini" in shown.stdout
    assert "requested" in shown.stdout

    own = gw.cli("approvals", "approve", approval_id, token=gw.secrets["carol"])
    assert own.returncode == 1
    assert len(own.stderr.strip().splitlines()) == 1
    assert "its own" in own.stderr

    approved = gw.cli("approvals", "approve", approval_id, "--scope", "once", "--note", "ok")
    assert approved.returncode == 0, approved.stderr
    assert f"Approved {approval_id} (once)." in approved.stdout
    assert chat(gw, "carol").status_code == 200
    history = json.loads(gw.cli("approvals", "show", approval_id, "--json").stdout)
    assert [e["event"] for e in history["events"]] == ["requested", "approved", "consumed"]

    alices = chat(gw, "alice").json()["error"]["approval_id"]
    denied = gw.cli("approvals", "deny", alices, "--reason", "over plan [ticket 42]",
                    token=gw.secrets["carol"])  # fmt: skip
    assert denied.returncode == 0, denied.stderr
    assert gw.get(f"/approvals/{alices}").json()["state"] == "denied"
    # People's words are printed as typed, never read as markup.
    assert "Note: over plan [ticket 42]" in gw.cli("approvals", "show", alices).stdout
    again = gw.cli("approvals", "deny", alices, "--reason", "twice")
    assert again.returncode == 1
    assert "denied, not pending" in again.stderr


def test_asking_ahead_from_the_command_line(gw: AdminGateway) -> None:
    ask = ["approvals", "request", "--policy", "acme-tokens", "--reason", "nightly batch",
           "--amount", "20000", "--json"]  # fmt: skip
    first = gw.cli(*ask, token=gw.secrets["bob"])
    assert first.returncode == 0, first.stderr
    created = json.loads(first.stdout)
    assert (created["state"], created["amount"]) == ("pending", "20000")
    second = json.loads(gw.cli(*ask, token=gw.secrets["bob"]).stdout)
    assert second["id"] == created["id"]
    assert chat(gw, "bob", BIG).json()["error"]["approval_id"] == created["id"]
    unknown = gw.cli("approvals", "request", "--policy", "nope", "--reason", "x",
                     token=gw.secrets["bob"])  # fmt: skip
    assert unknown.returncode == 1
    assert "nope" in unknown.stderr
