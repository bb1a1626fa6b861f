"""Runtime price rows and budget policies: exact round trips, save / list / delete."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gateway_support import journal_url_for
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
from spendgate.store import Journal, schema
from spendgate.store.policy_codec import PolicyDigests

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(journal_url_for(tmp_path / "records.db")) as opened:
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


# -- counting identities ----------------------------------------------------------------------


def _tokens(policy_id: str = "team") -> BudgetPolicy:
    return BudgetPolicy(
        id=policy_id,
        scope=ScopeRef(ScopeKind.PROJECT, "acme"),
        metric=Metric.TOKENS,
        interval=Interval(IntervalKind.DAILY),
        hard_limit=Decimal(1000),
    )


def test_a_changed_counting_identity_moves_to_the_next_generation(journal: Journal) -> None:
    tokens = _tokens()
    usd = replace(tokens, metric=Metric.USD, hard_limit=Decimal(5))
    (first,), changes = journal.counting.resolve([tokens], now=NOW)
    assert (first.counter_id, changes) == ("team", [])
    (same,), changes = journal.counting.resolve([replace(tokens, hard_limit=Decimal(9))])
    assert (same.generation, changes) == (0, [])  # a new limit is not a new identity

    assert [c.changes for c in journal.counting.pending([usd])] == [["metric tokens → usd"]]
    assert journal.counting.pending([usd]) == journal.counting.pending([usd])  # wrote nothing
    (moved,), changes = journal.counting.resolve([usd])
    assert moved.counter_id == "team 1"
    assert [(c.policy_id, c.generation, c.changes) for c in changes] == [
        ("team", 1, ["metric tokens → usd"])
    ]
    assert journal.counting.resolve([usd])[0][0].counter_id == "team 1"  # settled
    # Back to tokens: fresh again, never the generation-0 counters of the old tokens budget.
    assert journal.counting.resolve([tokens])[0][0].counter_id == "team 2"
    assert journal.counting.pending([tokens]) == []


def test_processes_starting_together_agree_on_the_generation(tmp_path: Path) -> None:
    url = journal_url_for(tmp_path / "shared.db")
    with Journal(url) as journal:
        journal.counting.resolve([_tokens()])
    usd = replace(_tokens(), metric=Metric.USD)
    journals = [Journal(url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(journals)) as pool:
            resolved = list(pool.map(lambda j: j.counting.resolve([usd])[0][0], journals))
    finally:
        for journal in journals:
            journal.close()
    assert {policy.counter_id for policy in resolved} == {"team 1"}


def test_stored_rows_that_do_not_validate_are_never_returned_as_policies(
    journal: Journal,
) -> None:
    good = replace(_tokens("good"), source="api")
    long = replace(
        _tokens("long"),
        interval=Interval(IntervalKind.ROLLING, duration=timedelta(days=400)),
        source="api",
    )
    for policy in (good, long):
        journal.policies.save(policy, now=NOW)
    assert journal.policies.list_policies() == [good]
    assert journal.policies.get("long") is None
    (invalid,) = journal.policies.invalid_policies()
    assert (invalid.id, invalid.source) == ("long", "api")
    assert "at most 366 days (got 400d)" in invalid.problem


def test_counters_from_before_identities_were_recorded_go_by_the_last_evaluated_version(
    journal: Journal,
) -> None:
    # A database from before the upgrade: decisions evaluated the tokens budget (its snapshot)
    # and counted under its id, but no identity was recorded. Edited to usd at the same time.
    tokens = _tokens()
    digest, spec = PolicyDigests().snapshot(tokens)
    with journal.engine.begin() as connection:
        connection.execute(
            schema.policy_snapshots.insert(),
            {"digest": digest, "policy_id": "team", "spec": spec, "created_at": NOW},
        )
    usd = replace(tokens, metric=Metric.USD)
    assert [c.changes for c in journal.counting.pending([usd])] == [["metric tokens → usd"]]
    assert journal.counting.pending([tokens]) == []
    (resolved,), _ = journal.counting.resolve([usd])
    assert resolved.counter_id == "team 1"
