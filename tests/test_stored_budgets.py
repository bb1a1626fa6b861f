"""Runtime budgets in the database that no longer validate (written before a bound existed, or
edited by hand) over real HTTP: the gateway starts, skips each with an ERROR naming it, keeps
serving the requests in its scope under the other budgets, and lists it as invalid."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from admin_support import admin_gateway
from gateway_support import journal_url_for
from spendgate.store import schema
from spendgate.store.journal import Journal

GOOD = {
    "scope": {"kind": "project", "id": "acme"},
    "metric": "usd",
    "interval": {"kind": "daily", "timezone": "UTC"},
    "hard_limit": "100",
    "soft_action": "alert",
    "hard_action": "block",
    "alert_thresholds": ["0.5"],
}

BAD_ROWS: dict[str, dict[str, Any]] = {
    # 900000 days reach back before year 1: every request of acme answered 500.
    "acme-forever": {**GOOD, "interval": {"kind": "rolling", "seconds": 900_000 * 86_400}},
    "acme-mars": {**GOOD, "interval": {"kind": "daily", "timezone": "Mars/Olympus_Mons"}},
    "acme-bitcoin": {**GOOD, "metric": "bitcoin"},
    "acme-negative": {**GOOD, "hard_limit": "-5"},
    "acme-garbled": {"metric": "usd"},
}


def _write_rows(database: Path) -> None:
    """Rows as an older version (or a hand edit) left them, before the gateway starts."""
    now = datetime.now(UTC)
    with Journal(journal_url_for(database)) as journal, journal.engine.begin() as connection:
        connection.execute(
            schema.budget_policies.insert(),
            [
                {"id": ident, "spec": spec, "source": "api", "enabled": True,
                 "created_at": now, "updated_at": now}
                for ident, spec in {**BAD_ROWS, "acme-good": GOOD}.items()
            ],
        )  # fmt: skip


def test_invalid_stored_budgets_are_skipped_and_listed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write_rows(tmp_path / "journal.db")
    caplog.set_level(logging.ERROR, logger="spendgate.records")
    with admin_gateway(tmp_path) as gw:
        for ident in BAD_ROWS:
            assert f"runtime budget {ident} is invalid" in caplog.text
        assert gw.chat("alice").status_code == 200  # in the bad budgets' scope
        assert gw.chat("dave").status_code == 200
        listed = gw.get("/budgets")
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert {item["id"] for item in body["data"]} >= {"acme-good", "principal-daily-usd"}
        assert not set(BAD_ROWS) & {item["id"] for item in body["data"]}
        invalid = {item["id"]: item for item in body["invalid"]}
        assert set(invalid) == set(BAD_ROWS)
        assert "366 days" in invalid["acme-forever"]["problem"]
        assert "Mars/Olympus_Mons" in invalid["acme-mars"]["problem"]
        assert "hard_limit" in invalid["acme-negative"]["problem"]
        # The good one still governs acme; a non-admin key is not shown others' records.
        assert gw.get("/budgets", token=gw.secrets["alice"]).json()["invalid"] == []

        one = gw.get("/budgets/acme-forever")
        assert one.status_code == 409
        assert "invalid" in one.json()["error"]["message"]
        assert gw.put("/budgets/acme-forever", json={"hard_limit": "1"}).status_code == 409
        assert gw.post("/budgets", json={**GOOD, "id": "acme-forever"}).status_code == 409
        # An operator removes it like any runtime budget.
        assert gw.delete("/budgets/acme-forever").status_code == 204
        assert "acme-forever" not in {i["id"] for i in gw.get("/budgets").json()["invalid"]}
        shown = gw.cli("budgets", "list")
        assert shown.returncode == 0, shown.stderr
        assert "acme-mars" in shown.stdout + shown.stderr
