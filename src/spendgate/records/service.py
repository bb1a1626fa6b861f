"""``RuntimeRecords``: budgets, rate limits, prices and keys managed while the gateway runs.

Records created through the admin API live in the database with source "api" and are applied
to the running gateway at once (``governor.state`` for budgets and prices, the ``KeyRing`` for
keys); on start, ``load`` applies the stored ones on top of the config's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from spendgate.config import Config
from spendgate.domain.budgets import BudgetPolicy
from spendgate.domain.pricing import PriceSource, PricingRecord
from spendgate.gateway.approvals import ApprovalDesk
from spendgate.gateway.auth import KeyRing
from spendgate.governor import Governor
from spendgate.records.alerts import AlertRecords
from spendgate.records.approvals import ApprovalRecords
from spendgate.records.budgets import BudgetRecords
from spendgate.records.keys import KeyRecords
from spendgate.records.live import LiveState
from spendgate.records.pricing import PriceRecords
from spendgate.records.rate_limits import RateLimitRecords
from spendgate.store.journal import Journal
from spendgate.store.keys import KeyRepository
from spendgate.store.rate_limits import RateLimitRepository

__all__ = ["RuntimeRecords"]

log = logging.getLogger("spendgate.records")


class RuntimeRecords:
    def __init__(
        self,
        config: Config,
        governor: Governor,
        keys: KeyRing,
        journal: Journal,
        catalog: Sequence[PricingRecord],
        desk: ApprovalDesk,
    ) -> None:
        self._live = LiveState(config, governor, catalog)
        self._journal = journal
        self.budgets = BudgetRecords(self._live, journal)
        self.rate_limits = RateLimitRecords(self._live, RateLimitRepository(journal.engine))
        self.pricing = PriceRecords(self._live, journal)
        self.keys = KeyRecords(config, keys, KeyRepository(journal.engine))
        self.approvals = ApprovalRecords(self._live, journal, desk)
        self.alerts = AlertRecords(journal)

    def reload(self) -> None:
        """Apply the stored records again, as another replica left them: budgets, prices,
        keys (revoked ones dropped) and the approved overrides in force."""
        live = self._live
        with live.lock:
            live.api_policies.clear()
            live.api_prices.clear()
            live.invalid_policies.clear()
            self.load()
            self.keys.drop_revoked()
            approvals = self._journal.approvals
            live.governor.grants.replace(
                filter(None, (a.grant() for a in approvals.active_grants()))
            )

    def load(self) -> None:
        """Apply the stored runtime budgets, price overrides and keys to the running state."""
        live = self._live
        repository = self._journal.policies
        with live.lock:
            runtime: list[BudgetPolicy] = []
            for policy in repository.list_policies():
                if policy.source != "api":
                    continue
                if any(p.id == policy.id for p in live.config_policies):
                    log.warning(
                        "runtime budget %s ignored: the config file now defines a budget "
                        "with that id (delete the runtime one)",
                        policy.id,
                    )
                    continue
                runtime.append(policy)
            for policy in self._journal.counting.resolve(runtime)[0]:
                live.api_policies[policy.id] = policy
            for invalid in repository.invalid_policies():
                log.error(
                    "runtime budget %s is invalid and is not applied: %s. Delete it "
                    "(spendgate budgets delete %s) and create it again.",
                    invalid.id,
                    invalid.problem,
                    invalid.id,
                )
                live.invalid_policies[invalid.id] = invalid
            for stored in self._journal.pricing.list_prices(source=PriceSource.API):
                live.api_prices[stored.id] = stored
            live.apply_policies()
            live.apply_prices()
            self.rate_limits.load()
        for key_id in self.keys.load():
            log.warning(
                "runtime API key %s ignored: the config file now defines a key with that id",
                key_id,
            )
