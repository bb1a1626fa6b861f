"""Runtime price rows and budget policies: exact round trips, save / list / delete."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from spendgate.domain.budgets import (
    BudgetFilters,
    BudgetPolicy,
    HardAction,
    Metric,
    SoftAction,
)
from spendgate.domain.pricing import Precision, PriceSource, PricingRecord
from spendgate.domain.scopes import ScopeKind, ScopeRef
from spendgate.domain.windows import Interval, IntervalKind
from spendgate.store import Journal

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(f"sqlite:///{tmp_path / 'records.db'}") as opened:
        yield opened


def test_price_rows_round_trip_exactly(journal: Journal) -> None:
    record = PricingRecord(
        model="gpt-4o-mini",
        input_per_mtok=Decimal("0.15"),
        output_per_mtok=Decimal("0.600"),
        cached_input_per_mtok=Decimal("0.075"),
        per_request=Decimal("0.0000000001"),
        effective_from=datetime(2024, 7, 18, tzinfo=UTC),
        effective_to=datetime(2030, 1, 1, 6, 30, 0, 123456, tzinfo=UTC),
        source=PriceSource.API,
        precision=Precision.ESTIMATE,
    )
    bare = PricingRecord("local-llm", Decimal(0), Decimal("1E+1"), source=PriceSource.CONFIG)
    stored = journal.pricing.add(record, now=NOW)
    journal.pricing.add(bare, now=NOW)
    listed = journal.pricing.list_prices()
    assert [p.record for p in listed] == [record, bare]
    assert str(listed[0].record.output_per_mtok) == "0.600"  # scale kept, not just value
    assert listed[0].id == stored.id
    assert listed[0].created_at == NOW
    assert journal.pricing.records() == [record, bare]
    assert [p.record for p in journal.pricing.list_prices(model="local-llm")] == [bare]
    assert [p.record for p in journal.pricing.list_prices(source=PriceSource.API)] == [record]
    assert journal.pricing.delete(stored.id) is True
    assert journal.pricing.delete(stored.id) is False
    assert journal.pricing.delete_source(PriceSource.CONFIG) == 1
    assert journal.pricing.list_prices() == []


def test_catalog_prices_are_not_stored(journal: Journal) -> None:
    with pytest.raises(ValueError, match="catalog"):
        journal.pricing.add(PricingRecord("m", Decimal(1), Decimal(2)))


def test_naive_datetimes_are_refused(journal: Journal) -> None:
    naive = PricingRecord(
        "m", Decimal(1), Decimal(2), effective_from=datetime(2026, 1, 1), source=PriceSource.API
    )
    with pytest.raises(Exception, match="aware"):
        journal.pricing.add(naive)


POLICIES = [
    BudgetPolicy(
        id="acme-daily",
        scope=ScopeRef(ScopeKind.PROJECT, "acme"),
        metric=Metric.USD,
        interval=Interval(IntervalKind.DAILY, timezone="Europe/Prague"),
        hard_limit=Decimal("10.00"),
        soft_limit=Decimal("5"),
        soft_action=SoftAction.DEGRADE,
        hard_action=HardAction.REQUIRE_APPROVAL,
        degrade_to="gpt-4o-mini",
        alert_thresholds=(Decimal("0.25"), Decimal("0.9")),
        routing_mode_override="enforced",
        mode="dry_run",
        filters=BudgetFilters(models=frozenset({"gpt-4o", "o1"}), task_classes=frozenset()),
        enabled=False,
        source="api",
    ),
    BudgetPolicy(
        id="each-agent-tokens",
        scope=ScopeRef(ScopeKind.AGENT, "*"),
        metric=Metric.TOKENS,
        interval=Interval(IntervalKind.ROLLING, duration=timedelta(days=7, seconds=1)),
        hard_limit=Decimal(5_000_000),
        source="api",
    ),
    BudgetPolicy(
        id="global-requests",
        scope=ScopeRef(ScopeKind.GLOBAL),
        metric=Metric.REQUESTS,
        interval=Interval(IntervalKind.ROLLING, duration=timedelta(minutes=90.5)),
        hard_limit=Decimal(100),
        source="api",
    ),
]


def test_policies_round_trip_exactly(journal: Journal) -> None:
    for policy in POLICIES:
        journal.policies.save(policy, now=NOW)
    assert journal.policies.list_policies() == sorted(POLICIES, key=lambda p: p.id)
    assert [p.id for p in journal.policies.list_policies(enabled_only=True)] == [
        "each-agent-tokens",
        "global-requests",
    ]
    assert journal.policies.get("acme-daily") == POLICIES[0]
    assert journal.policies.get("missing") is None


def test_saving_a_policy_again_replaces_it(journal: Journal) -> None:
    journal.policies.save(POLICIES[1], now=NOW)
    changed = BudgetPolicy(
        id="each-agent-tokens",
        scope=ScopeRef(ScopeKind.AGENT, "*"),
        metric=Metric.TOKENS,
        interval=Interval(IntervalKind.MONTHLY),
        hard_limit=Decimal(1),
        source="api",
    )
    journal.policies.save(changed, now=NOW + timedelta(hours=1))
    assert journal.policies.list_policies() == [changed]
    assert journal.policies.set_enabled("each-agent-tokens", False) is True
    stored = journal.policies.get("each-agent-tokens")
    assert stored is not None
    assert stored.enabled is False
    assert journal.policies.delete("each-agent-tokens") is True
    assert journal.policies.delete("each-agent-tokens") is False
    assert journal.policies.set_enabled("each-agent-tokens", True) is False
