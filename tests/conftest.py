"""Shared builders for governance-core tests: a small registry of models, prices and policies;
and the ``journal`` marker of the tests that the suite's PostgreSQL pass runs again."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest

from spendgate.domain.amounts import to_atto
from spendgate.domain.budgets import (
    BudgetPolicy,
    CounterKey,
    CounterState,
    HardAction,
    Metric,
    SoftAction,
    UnpricedAction,
)
from spendgate.domain.models import Capability, Model, Tier
from spendgate.domain.planner import GovernanceState, PlanCall, plan
from spendgate.domain.pricing import PriceBook, PriceSource, PricingRecord
from spendgate.domain.requests import ChatRequest
from spendgate.domain.routing import RoutingDecision, RoutingMode, RoutingSettings
from spendgate.domain.scopes import RequestScopes, ScopeKind, ScopeRef
from spendgate.domain.windows import Interval, IntervalKind

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ALL_CAPS = frozenset({Capability.JSON, Capability.VISION, Capability.TOOLS})

MODELS = (
    Model("mini", "alpha", capabilities=ALL_CAPS, cost_tier=Tier.LOW, latency_tier=Tier.LOW,
          context_window=128_000, max_output_tokens=16_384),
    Model("standard", "alpha", capabilities=ALL_CAPS, cost_tier=Tier.MEDIUM,
          latency_tier=Tier.MEDIUM, context_window=128_000, max_output_tokens=16_384),
    Model("text-only", "alpha", capabilities=frozenset({Capability.JSON}), cost_tier=Tier.MEDIUM,
          latency_tier=Tier.MEDIUM, context_window=32_000, max_output_tokens=4_096),
    Model("premium", "beta", capabilities=ALL_CAPS, cost_tier=Tier.HIGH,
          latency_tier=Tier.HIGH, context_window=200_000, max_output_tokens=32_000),
    Model("beta-standard", "beta", capabilities=ALL_CAPS, cost_tier=Tier.MEDIUM,
          latency_tier=Tier.MEDIUM, context_window=128_000, max_output_tokens=16_384),
)  # fmt: skip

PRICES = (
    PricingRecord("mini", Decimal("0.15"), Decimal("0.60"), Decimal("0.075")),
    PricingRecord("standard", Decimal("2.50"), Decimal("10")),
    PricingRecord("text-only", Decimal("2.00"), Decimal("8")),
    PricingRecord("premium", Decimal("15"), Decimal("75")),
    PricingRecord("beta-standard", Decimal("3"), Decimal("15"), source=PriceSource.CONFIG),
)


def chat(text: str = "Hello there", model: str = "standard", **body: Any) -> ChatRequest:
    payload: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
    payload.update(body)
    return ChatRequest.from_openai(payload)


def policy(
    policy_id: str = "p",
    *,
    kind: ScopeKind = ScopeKind.PROJECT,
    member: str = "acme",
    metric: Metric = Metric.USD,
    interval: Interval | None = None,
    hard: str = "10",
    soft: str | None = None,
    **fields: Any,
) -> BudgetPolicy:
    return BudgetPolicy(
        id=policy_id,
        scope=ScopeRef(kind, member),
        metric=metric,
        interval=interval or Interval(IntervalKind.DAILY),
        hard_limit=Decimal(hard),
        soft_limit=None if soft is None else Decimal(soft),
        **fields,
    )


def state(
    policies: Iterable[BudgetPolicy] = (),
    *,
    mode: RoutingMode = RoutingMode.ENFORCED,
    prices: Iterable[PricingRecord] = PRICES,
    models: Iterable[Model] = MODELS,
    unpriced_action: UnpricedAction = UnpricedAction.ESTIMATE,
    **settings: Any,
) -> GovernanceState:
    return GovernanceState(
        settings=RoutingSettings(default_model="standard", mode=mode, **settings),
        models={model.id: model for model in models},
        prices=PriceBook(prices),
        policies=tuple(policies),
        unpriced_action=unpriced_action,
    )


ACME = RequestScopes(project="acme", principal="alice", api_key="k1", agent="bot", session="s1")

Counters = dict[CounterKey, CounterState]


def run_plan(
    governance: GovernanceState,
    request: ChatRequest,
    *,
    counters: Counters | None = None,
    now: datetime = NOW,
    **call: Any,
) -> RoutingDecision:
    store = counters or {}

    def reader(keys: tuple[CounterKey, ...]) -> CounterState:
        total = CounterState.of()
        for key in keys:
            total = total + store.get(key, CounterState.of())
        return total

    call.setdefault("scopes", ACME)
    return plan(
        governance, PlanCall(request=request, **call), now=now, decision_id="d1", counters=reader
    )


def day_key(policy_id: str, member: str = "acme", day: str = "2026-11-25") -> CounterKey:
    return CounterKey(policy_id, member, f"{day}T00:00:00Z")


# The helpers that give a test its journal on SQLite or, with SPENDGATE_TEST_JOURNAL=postgresql,
# on a throwaway PostgreSQL database (``gateway_support.journal_url_for``).
_JOURNAL_HELPERS = frozenset({
    ("gateway_support", "journal_url_for"),
    ("gateway_support", "serve_config"),
    ("admin_support", "admin_gateway"),
})  # fmt: skip


def _follows_the_journal_switch(module: ModuleType) -> bool:
    return any(
        (getattr(value, "__module__", None), getattr(value, "__name__", None)) in _JOURNAL_HELPERS
        for value in vars(module).values()
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "journal: its gateways' journal follows SPENDGATE_TEST_JOURNAL (conftest.py)"
    )


@pytest.hookimpl(tryfirst=True)  # marked before ``-m journal`` selects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``journal`` the tests of modules using one of ``_JOURNAL_HELPERS``; on PostgreSQL
    (SPENDGATE_TEST_JOURNAL=postgresql) without a server, skip them, saying why, once."""
    follows: dict[ModuleType, bool] = {}
    marked = []
    for item in items:
        module = getattr(item, "module", None)
        if module is None:
            continue
        if module not in follows:
            follows[module] = _follows_the_journal_switch(module)
        if follows[module]:
            item.add_marker(pytest.mark.journal)
            marked.append(item)
    if marked and os.environ.get("SPENDGATE_TEST_JOURNAL") == "postgresql":
        from postgres_support import unavailable

        reason = unavailable()
        if reason is not None:
            for item in marked:
                item.add_marker(
                    pytest.mark.skip(reason=f"SPENDGATE_TEST_JOURNAL=postgresql: {reason}")
                )


@pytest.fixture
def governance() -> GovernanceState:
    return state()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the local Redis (the test skips, saying why,
    without one); its keys are deleted afterwards."""
    from redis_support import connect, drop_prefix, fresh_prefix, run

    async def check() -> None:
        client = await connect()
        await client.aclose()

    run(check())
    name = fresh_prefix()
    yield name

    async def clean() -> None:
        client = await connect()
        await drop_prefix(client, name)
        await client.aclose()

    run(clean())


__all__ = [
    "ACME",
    "HardAction",
    "SoftAction",
    "chat",
    "day_key",
    "policy",
    "replace",
    "run_plan",
    "state",
]


def attos(amounts: Mapping[CounterKey, Decimal]) -> dict[CounterKey, int]:
    """A settlement of ``Decimal`` amounts as a ledger takes it: in attos."""
    return {key: to_atto(amount) for key, amount in amounts.items()}
