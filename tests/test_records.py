"""RuntimeRecords: budget documents round-trip through the YAML spec, consumption arithmetic
(property-tested), and runtime records surviving a gateway restart."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from admin_support import admin_gateway
from gateway_support import journal_url_for
from spendgate.config import load_config
from spendgate.domain.budgets import CounterState
from spendgate.domain.consumption import consumption
from spendgate.domain.windows import Window
from spendgate.records.budget_specs import (
    budget_document,
    format_duration,
    merged_document,
    parse_budget,
)
from spendgate.records.errors import RecordInvalidError
from spendgate.store.journal import Journal

WINDOW = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
amounts = st.decimals(min_value=0, max_value=10**12, places=9, allow_nan=False)
limits = st.decimals(min_value=Decimal("0.000001"), max_value=10**12, places=6, allow_nan=False)


@given(settled=amounts, reserved=amounts, limit=limits)
def test_consumption_arithmetic(settled: Decimal, reserved: Decimal, limit: Decimal) -> None:
    used = consumption("m", WINDOW, CounterState.of(settled, reserved), limit)
    assert used.consumed == settled + reserved
    assert used.remaining == max(limit - used.consumed, 0)
    assert used.remaining + min(used.consumed, limit) == limit
    # Percent is rounded down: it reaches 100 exactly when the limit is reached, never early.
    assert (used.percent >= 100) == (used.consumed >= limit)
    assert used.percent <= used.consumed * 100 / limit
    assert used.consumed * 100 / limit - used.percent < Decimal("0.01")
    assert used.percent.as_tuple().exponent == -2


@given(a=amounts, b=amounts, limit=limits)
def test_percent_is_monotonic(a: Decimal, b: Decimal, limit: Decimal) -> None:
    low, high = sorted((a, b))
    first = consumption("m", WINDOW, CounterState.of(low), limit)
    second = consumption("m", WINDOW, CounterState.of(high), limit)
    assert first.percent <= second.percent
    assert first.remaining >= second.remaining


@pytest.mark.parametrize(
    ("duration", "text"),
    [(timedelta(days=7), "1w"), (timedelta(days=3), "3d"), (timedelta(hours=36), "36h"),
     (timedelta(minutes=90), "90m")],
)  # fmt: skip
def test_format_duration(duration: timedelta, text: str) -> None:
    assert format_duration(duration) == text


DOCUMENTS = [
    {"id": "a", "scope": {"kind": "project", "id": "acme"}, "metric": "usd",
     "interval": "daily", "hard_limit": "5.10", "soft_limit": 1, "soft_action": "degrade",
     "degrade_to": "gpt-4o-mini", "filters": {"models": ["gpt-4o"], "task_classes":
     ["auxiliary_summary"]}, "mode": "dry_run"},
    {"id": "b", "scope": {"kind": "global"}, "metric": "tokens",
     "interval": {"kind": "rolling", "duration": "12h"}, "hard_limit": 1000,
     "alert_thresholds": [0.9], "hard_action": "require_approval", "enabled": False},
    {"id": "c", "scope": {"kind": "agent", "id": "*"}, "metric": "requests",
     "interval": {"kind": "monthly", "timezone": "America/Santiago"}, "hard_limit": 10,
     "routing_mode_override": "enforced"},
]  # fmt: skip


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: str(d["id"]))
def test_budget_documents_round_trip(document: dict[str, object]) -> None:
    config = load_config(None)
    policy = parse_budget(config, document)
    assert policy.source == "api"
    again = parse_budget(config, budget_document(policy))
    assert again == policy


def test_calendar_windows_take_the_config_timezone_by_default() -> None:
    config = load_config(None)
    policy = parse_budget(config, DOCUMENTS[0])
    assert policy.interval.timezone == config.timezone
    assert budget_document(policy)["interval"] == {"kind": "daily", "timezone": "UTC"}


def test_merged_document_replaces_and_resets_fields() -> None:
    config = load_config(None)
    policy = parse_budget(config, DOCUMENTS[0])
    merged = merged_document(policy, {"hard_limit": "9", "soft_limit": None, "soft_action": None})
    updated = parse_budget(config, merged)
    assert updated.hard_limit == Decimal(9)
    assert updated.soft_limit is None
    assert updated.filters == policy.filters
    with pytest.raises(RecordInvalidError):
        merged_document(policy, ["not", "a", "mapping"])


def test_runtime_records_survive_a_restart(tmp_path: Path) -> None:
    with admin_gateway(tmp_path) as gw:
        created = gw.post("/budgets", json={"id": "kept", "scope": {"kind": "principal",
                          "id": "dave"}, "metric": "usd", "interval": "daily",
                          "hard_limit": "0.000001"})  # fmt: skip
        assert created.status_code == 201
        assert gw.post("/budgets/kept/disable").status_code == 200
        price = gw.post("/pricing", json={"model": "gpt-4o", "input_per_mtok": 7,
                                          "output_per_mtok": 21})  # fmt: skip
        assert price.status_code == 201
        kept_secret = gw.post("/keys", json={"id": "k-kept", "project": "acme"}).json()["secret"]
        gone_secret = gw.post("/keys", json={"id": "k-gone", "project": "acme"}).json()["secret"]
        assert gw.delete("/keys/k-gone").status_code == 200
    with admin_gateway(tmp_path) as gw:
        reloaded = gw.get("/budgets/kept").json()
        assert (reloaded["source"], reloaded["enabled"], reloaded["hard_limit"]) == (
            "api", False, "0.000001",
        )  # fmt: skip
        assert gw.post("/budgets/kept/enable").status_code == 200
        assert gw.chat("dave").status_code == 429  # the reloaded budget governs again
        gpt4o = gw.get("/pricing", params={"model": "gpt-4o"}).json()["data"]
        override = next(row for row in gpt4o if row["source"] == "api")
        assert override["id"] == price.json()["id"]
        assert override["in_effect"] is True
        assert gw.chat(kept_secret).status_code == 200
        assert gw.chat(gone_secret).status_code == 401


def test_rows_edited_by_hand_into_nonsense_do_not_stop_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with admin_gateway(tmp_path) as gw:
        for budget_id in ("broken", "intact"):
            spec = {"id": budget_id, "scope": {"kind": "principal", "id": "dave"},
                    "metric": "requests", "interval": "daily", "hard_limit": "5"}  # fmt: skip
            assert gw.post("/budgets", json=spec).status_code == 201
        for key_id in ("k-broken", "k-models", "k-intact"):
            assert gw.post("/keys", json={"id": key_id, "project": "acme"}).status_code == 201
        intact_secret = gw.post("/keys/k-intact/rotate").json()["secret"]
    # By hand, past the store's own types: SQL on the journal's engine (either database).
    with (
        Journal(journal_url_for(tmp_path / "journal.db")) as journal,
        journal.engine.begin() as connection,
    ):
        connection.execute(text("UPDATE budget_policies SET spec = '{\"cut' WHERE id = 'broken'"))
        connection.execute(text("UPDATE api_keys SET permissions = 'nope' WHERE id = 'k-broken'"))
        connection.execute(text("UPDATE api_keys SET models = '{\"a\": 1}' WHERE id = 'k-models'"))
    with caplog.at_level(logging.ERROR), admin_gateway(tmp_path) as gw:
        budgets = gw.get("/budgets").json()
        assert "intact" in {row["id"] for row in budgets["data"]}
        assert [row["id"] for row in budgets["invalid"]] == ["broken"]
        assert "not a JSON object" in budgets["invalid"][0]["problem"]
        keys = {row["id"] for row in gw.get("/keys").json()["data"]}
        assert {"k-intact"} <= keys
        assert not {"k-broken", "k-models"} & keys
        assert gw.chat(intact_secret).status_code == 200
    logged = caplog.text
    assert "runtime budget broken is invalid" in logged
    assert "runtime API key k-broken is unreadable" in logged
    assert "runtime API key k-models is unreadable" in logged
