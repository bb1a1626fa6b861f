"""The decision codec: the raw write path agrees with the typed read path, exactly."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.dialects import sqlite

from spendgate.domain.amounts import to_atto
from spendgate.domain.budgets import BudgetEvaluation
from spendgate.domain.pricing import Usage
from spendgate.domain.routing import UpstreamAttempt
from spendgate.domain.windows import Window
from spendgate.store import StoredDecision, migrate, schema
from spendgate.store.codec import DECISION_COLUMNS, decision_from_row, decision_values
from spendgate.store.db import _sqlite_datetime, insert_tuples, make_engine
from spendgate.store.policy_codec import PolicyDigests, policy_from_snapshot
from spendgate.store.sqltypes import UtcDateTime
from test_journal import DAILY, WEEKLY_TOKENS, estimate, make_decision

NOW = datetime(2026, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)


def test_decision_columns_are_the_table_columns() -> None:
    assert sorted(DECISION_COLUMNS) == sorted(schema.routing_decisions.c.keys())
    assert len(set(DECISION_COLUMNS)) == len(DECISION_COLUMNS)


def test_raw_datetimes_are_what_sqlalchemy_would_store() -> None:
    dialect = sqlite.dialect()
    processor = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None
    prague = timezone(timedelta(hours=1))
    for at in (NOW, NOW.replace(microsecond=0), datetime(2026, 1, 1, 0, 30, tzinfo=prague)):
        assert _sqlite_datetime(at) == processor(at)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path_factory.mktemp('codec') / 'codec.db'}"
    created = make_engine(url)
    migrate(url, engine=created)
    yield created
    created.dispose()


_ids = itertools.count()


def round_trip(engine: Engine, decision: Any, **kwargs: Any) -> StoredDecision:
    """Write through the raw path, read back through the typed table (real SQLite)."""
    decision = replace(decision, id=f"codec-{next(_ids)}")
    digests = PolicyDigests()
    values = decision_values(decision, digests, _sqlite_datetime, now=NOW, **kwargs)
    table = schema.routing_decisions
    with engine.begin() as connection:
        insert_tuples(connection, table, DECISION_COLUMNS, [values])
        row = connection.execute(select(table).where(table.c.id == decision.id)).mappings().one()
    snapshots = {
        digests(e.policy): policy_from_snapshot(digests.snapshot(e.policy)[1])
        for e in decision.budget_evaluations
    }
    stored = decision_from_row(row, snapshots)
    return replace(stored, decision=replace(stored.decision, id="same"))


def test_unpriced_decision_with_priced_candidates_round_trips(engine: Engine) -> None:
    decision = replace(make_decision(), estimate=estimate("shadow", None), target_model="shadow")
    assert round_trip(engine, decision).decision == replace(decision, id="same")


def test_settled_decision_round_trips_with_its_flag(engine: Engine) -> None:
    decision = make_decision(usage=Usage(10, 2, 1), cost=Decimal("1E-12"))
    stored = round_trip(engine, decision, usage_estimated=True)
    assert stored.decision == replace(decision, id="same")
    assert stored.decision.actual_cost_usd == Decimal("0.000000000001")
    assert stored.usage_estimated is True
    assert stored.settled_at == NOW


def test_failover_attempts_round_trip_compactly(engine: Engine) -> None:
    attempts = (
        UpstreamAttempt("mini", "alpha", "timeout", True, "d-1", Usage(812), Decimal("0.0001218")),
        UpstreamAttempt("standard", "beta", "server_error"),
        UpstreamAttempt("premium", "gamma", "skipped_by_caller", decision_id="d-2"),
        UpstreamAttempt("beta-standard", "beta", "ok", decision_id="codec"),
    )
    decision = replace(make_decision(usage=Usage(10, 2), cost=Decimal(1)), attempts=attempts)
    assert round_trip(engine, decision).decision == replace(decision, id="same")
    values = decision_values(decision, PolicyDigests(), _sqlite_datetime, now=NOW)
    stored = orjson.loads(values[DECISION_COLUMNS.index("detail")])["at"]
    assert stored[:2] == [
        {"m": "mini", "pv": "alpha", "o": "timeout", "b": True, "d": "d-1", "u": [812, 0, 0],
         "c": "0.0001218"},
        {"m": "standard", "pv": "beta", "o": "server_error"},
    ]  # fmt: skip


def test_odd_window_bounds_round_trip(engine: Engine) -> None:
    decision = make_decision()
    first = decision.budget_evaluations[0]
    odd = BudgetEvaluation(
        policy=first.policy,
        member=first.member,
        window=Window(NOW - timedelta(microseconds=1), NOW),
        settled_atto=to_atto(Decimal("-0.00")),
        reserved_atto=to_atto(Decimal("1E+3")),
        request_amount=None,
        status=first.status,
        approval_id="apr_1",
        keys=first.keys,
    )
    decision = replace(decision, budget_evaluations=(odd,))
    assert round_trip(engine, decision).decision == replace(decision, id="same")


def test_detail_is_compact() -> None:
    decision = make_decision()
    values = decision_values(decision, PolicyDigests(), _sqlite_datetime, now=NOW)
    detail = values[DECISION_COLUMNS.index("detail")]
    parsed = orjson.loads(detail)
    # Policies are referenced, never copied; candidates repeat only what differs.
    assert "acme-daily" not in detail
    assert all(len(e["p"]) == 20 for e in parsed["ev"])
    assert parsed["cand"][0]["e"] == {}
    assert len(detail) < 1100
    assert {DAILY.id, WEEKLY_TOKENS.id}.isdisjoint(detail.split('"'))
