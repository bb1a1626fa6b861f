"""The running gateway's governance state, rebuilt whenever a runtime record changes.

The proxy reads ``governor.state`` once per request; a change builds a new immutable
``GovernanceState`` and assigns it in one attribute store (atomic under the GIL and asyncio),
so a request sees either the old state or the new one, never a mix. Admin routes run in
worker threads: ``lock`` serialises changes so two of them cannot each rebuild from a stale
copy and lose the other's change.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from spendgate.config import Config
from spendgate.config.convert import price_book
from spendgate.config.rate_limits import RateLimitSpec
from spendgate.domain.budgets import BudgetPolicy
from spendgate.domain.pricing import PricingRecord
from spendgate.governor import Governor
from spendgate.store.policies import InvalidPolicy
from spendgate.store.records import StoredPrice

__all__ = ["LiveState"]


class LiveState:
    def __init__(self, config: Config, governor: Governor, catalog: Sequence[PricingRecord]):
        self.config = config
        self.governor = governor
        self.catalog = tuple(catalog)
        # The governor's: with their counter generations (``Governor`` resolved them).
        self.config_policies: tuple[BudgetPolicy, ...] = governor.state.policies
        self.config_prices: tuple[PricingRecord, ...] = config.pricing_records()
        # Runtime records (source "api"), mirrored from the database: by id, in creation order.
        self.api_policies: dict[str, BudgetPolicy] = {}
        self.api_prices: dict[int, StoredPrice] = {}
        # Stored runtime budgets that fail validation: not applied, shown so they can be deleted.
        self.invalid_policies: dict[str, InvalidPolicy] = {}
        # Runtime rate limits (source "api"), by id, in creation order.
        self.api_rate_limits: dict[str, RateLimitSpec] = {}
        self.lock = threading.RLock()

    def policy(self, policy_id: str) -> BudgetPolicy | None:
        for policy in self.config_policies:
            if policy.id == policy_id:
                return policy
        return self.api_policies.get(policy_id)

    def policies(self) -> tuple[BudgetPolicy, ...]:
        return (*self.config_policies, *self.api_policies.values())

    def apply_policies(self) -> None:
        self.governor.state = replace(self.governor.state, policies=self.policies())

    def apply_rate_limits(self) -> None:
        specs = (*self.config.rate_limits, *self.api_rate_limits.values())
        limits = tuple(spec.rate_limit() for spec in specs)
        self.governor.state = replace(self.governor.state, rate_limits=limits)

    def apply_prices(self) -> None:
        """New price book (catalog + config + api rows) and the cost tiers it derives, the
        way config loading builds them (``Governor.from_config``)."""
        api_rows = [stored.record for stored in self.api_prices.values()]
        book = price_book(self.config.model_specs, self.config.pricing, (*self.catalog, *api_rows))
        models = self.config.models(book)
        self.governor.state = replace(
            self.governor.state, prices=book, models={model.id: model for model in models}
        )
