"""Compact records (what the gateway sends its journal writer) decode to equal items."""

from __future__ import annotations

import marshal
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from spendgate.domain.budgets import CounterKey
from spendgate.domain.pricing import Usage
from spendgate.domain.routing import RoutingAction, RoutingDecision, UpstreamAttempt
from spendgate.store import compact
from spendgate.store.batch import AppendDecision, CounterIncrements, Item, SettleDecision
from test_journal import make_decision


def without_keys(decision: RoutingDecision) -> RoutingDecision:
    """Evaluations travel without the counters they read (the journal never stores them)."""
    evaluations = tuple(e._replace(keys=()) for e in decision.budget_evaluations)
    return replace(decision, budget_evaluations=evaluations)


def travel(items: list[Item], encoder: compact.Encoder, decoder: compact.Decoder) -> list[Item]:
    records: list[compact.Record] = []
    for item in items:
        encoder.encode(item, records)
    # Through marshal, as the frames go: only its types are allowed.
    decoded = [decoder.decode(record) for record in marshal.loads(marshal.dumps(records))]
    return [item for item in decoded if item is not None]


def test_every_kind_of_item_decodes_equal() -> None:
    failed_over = replace(
        make_decision(1, would=RoutingAction.BLOCK, usage=Usage(812, 120, 512),
                      cost=Decimal("0.0001953000000001")),
        attempts=(
            UpstreamAttempt("premium", "beta", "timeout", True, "dec-x", Usage(40, 0, 0),
                            Decimal("0.00012")),
            UpstreamAttempt("mini", "alpha", "ok"),
        ),
        created_at=datetime(2026, 3, 14, 9, 26, 53, 999_999, tzinfo=UTC),
    )  # fmt: skip
    settle = SettleDecision(
        "dec-000002", Usage(1, 2, 0), None, Decimal("1E-18"), 12.5, "ok", True,
        datetime(2099, 12, 31, 23, 59, 59, 123_457, tzinfo=UTC),
    )  # fmt: skip
    increments = CounterIncrements({CounterKey("acme-daily", "acme", "k"): Decimal("0.0000001")})
    items: list[Item] = [AppendDecision(failed_over, True), settle, increments]
    (append, settled, counters) = travel(items, compact.Encoder(), compact.Decoder())
    assert isinstance(append, AppendDecision)
    assert append.decision == without_keys(failed_over)
    assert append.usage_estimated is True
    assert settled == settle
    assert counters == increments


def test_a_full_definition_table_starts_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the table's size the encoder forgets its definitions (and tells the writer), then
    defines what the next records need again: nothing decodes against a stale number."""
    monkeypatch.setattr(compact, "_MAX_DEFINITIONS", 3)  # a decision needs 4: 2 policies, 2 windows
    encoder, decoder = compact.Encoder(), compact.Decoder()
    decisions = [make_decision(n) for n in range(5)]
    decoded = travel([AppendDecision(d) for d in decisions], encoder, decoder)
    assert [item.decision for item in decoded if isinstance(item, AppendDecision)] == [
        without_keys(d) for d in decisions
    ]
    assert len(encoder.definitions()) == 4  # defined again after each FORGET
