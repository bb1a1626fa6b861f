"""A config budget whose counting identity (metric, scope kind, interval) is edited between two
runs of the gateway, over real HTTP: its old counters are never read under the new identity —
the changed budget starts on fresh counters, says so at start-up, and ``spendgate config check``
reports the change before the gateway is restarted."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from admin_support import CONFIG, SPENDGATE, AdminGateway, admin_gateway
from gateway_support import journal_url_for
from spendgate.store import schema
from spendgate.store.journal import Journal

TOKENS = """
  - {{id: acme-spend, scope: {{kind: project, id: acme}}, metric: tokens, interval: daily,
     hard_limit: 1000000, hard_action: block}}
"""
# The same id, now in dollars: read as dollars, the tokens already counted would exceed it.
USD = """
  - {{id: acme-spend, scope: {{kind: project, id: acme}}, metric: usd, interval: daily,
     hard_limit: 5, hard_action: block}}
"""


def _config(budget: str) -> str:
    return CONFIG + budget


def _acme_spend(gw: AdminGateway) -> dict[str, Any]:
    budgets = {item["id"]: item for item in gw.get("/budgets").json()["data"]}
    return budgets["acme-spend"]["consumption"][0]


def _config_check(tmp_path: Path, budget: str) -> dict[str, Any]:
    """``spendgate config check --json`` on the config the next start would use."""
    text = _config(budget).format(mock="http://127.0.0.1:9")
    path = tmp_path / "spendgate.yaml"
    path.write_text(f"database_url: {journal_url_for(tmp_path / 'journal.db')}\n{text}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPENDGATE_")}
    done = subprocess.run(
        [SPENDGATE, "config", "check", "--json", "--config", str(path)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_a_budget_edited_from_tokens_to_usd_starts_on_fresh_counters(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with admin_gateway(tmp_path, config=_config(TOKENS)) as gw:
        for _ in range(3):
            assert gw.chat("alice").status_code == 200
        gw.flush()
        tokens = Decimal(_acme_spend(gw)["settled"])
        assert tokens > 5  # as dollars this would be over the new limit
    assert _config_check(tmp_path, TOKENS)["counter_changes"] == []
    changes = _config_check(tmp_path, USD)["counter_changes"]
    assert [change["id"] for change in changes] == ["acme-spend"]
    assert "metric tokens → usd" in changes[0]["changes"]

    caplog.set_level(logging.WARNING, logger="spendgate.journal")
    with admin_gateway(tmp_path, config=_config(USD)) as gw:
        assert "budget acme-spend: what its counters measure changed" in caplog.text
        assert "fresh counters" in caplog.text
        assert Decimal(_acme_spend(gw)["settled"]) == 0  # not the token count as dollars
        reply = gw.chat("alice")
        assert reply.status_code == 200, reply.text
        gw.flush()
        spent = Decimal(_acme_spend(gw)["settled"])
        assert 0 < spent < 1  # dollars of one request
    assert _config_check(tmp_path, USD)["counter_changes"] == []  # applied: nothing new
    caplog.clear()
    with admin_gateway(tmp_path, config=_config(USD)) as gw:  # the fresh counters persist
        assert "fresh counters" not in caplog.text
        assert Decimal(_acme_spend(gw)["settled"]) == spent

    # The token counters are kept (never read as dollars); back to tokens: fresh again.
    caplog.clear()
    with admin_gateway(tmp_path, config=_config(TOKENS)) as gw:
        assert "fresh counters" in caplog.text
        assert Decimal(_acme_spend(gw)["settled"]) == 0
    with Journal(journal_url_for(tmp_path / "journal.db")) as journal:
        counters = schema.usage_counters
        with journal.engine.connect() as connection:
            ids = set(connection.execute(select(counters.c.policy_id)).scalars())
    assert {"acme-spend"} < ids


def test_a_runtime_budget_on_fresh_counters_keeps_them_across_restarts(tmp_path: Path) -> None:
    """A budget created through the API under an id whose counters measured something else
    counts under a later generation: start-up must load those counters, not only generation
    0's (the live windows are keyed by counter id)."""
    acme = {"kind": "project", "id": "acme"}
    spec = {"id": "reused", "scope": acme, "interval": "daily", "hard_action": "block"}
    with admin_gateway(tmp_path) as gw:
        tokens = gw.post("/budgets", json={**spec, "metric": "tokens", "hard_limit": "100000"})
        assert tokens.status_code == 201, tokens.text
        assert gw.chat("alice").status_code == 200
        assert gw.delete("/budgets/reused").status_code == 204
        usd = gw.post("/budgets", json={**spec, "metric": "usd", "hard_limit": "5"})
        assert usd.status_code == 201, usd.text
        assert gw.chat("alice").status_code == 200
        gw.flush()
        spent = Decimal(gw.get("/budgets/reused").json()["consumption"][0]["settled"])
        assert 0 < spent < 1
    with admin_gateway(tmp_path) as gw:
        again = gw.get("/budgets/reused").json()["consumption"][0]["settled"]
        assert Decimal(again) == spent
