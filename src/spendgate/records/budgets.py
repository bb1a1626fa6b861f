"""Budget policies at runtime: create, update, enable/disable, delete (source "api"), and
every policy's live consumption in its current window.

Config policies (source "config") are read-only here. Policy ids from the config and the
database share one namespace, because usage counters are keyed by policy id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from spendgate.domain.budgets import BudgetPolicy, counter_changes, counters_for
from spendgate.domain.consumption import Consumption, consumption
from spendgate.domain.scopes import RequestScopes
from spendgate.records.budget_specs import merged_document, parse_budget
from spendgate.records.errors import (
    ConfigManagedError,
    RecordConflictError,
    RecordInvalidError,
    RecordNotFoundError,
)
from spendgate.records.live import LiveState
from spendgate.store import schema
from spendgate.store.journal import Journal
from spendgate.store.policies import InvalidPolicy

__all__ = ["BudgetFilter", "BudgetRecords"]

audit = logging.getLogger("spendgate.audit")

_WHAT = "budget"


@dataclass(frozen=True, slots=True)
class BudgetFilter:
    """The request dimensions of ``effective``: ``None`` means "not given"."""

    scopes: RequestScopes
    model: str | None = None
    provider: str | None = None
    task_class: str | None = None

    def admits(self, policy: BudgetPolicy) -> bool:
        """Whether the policy's filters let requests with these dimensions through (a filter
        on a dimension that was not given may apply, so it does not exclude the policy)."""
        filters = policy.filters
        return (
            _admits(filters.models, self.model)
            and _admits(filters.providers, self.provider)
            and _admits(filters.task_classes, self.task_class)
        )


def _admits(allowed: frozenset[str] | None, value: str | None) -> bool:
    return allowed is None or value is None or value in allowed


class BudgetRecords:
    def __init__(self, live: LiveState, journal: Journal) -> None:
        self._live = live
        self._journal = journal

    # -- reading ---------------------------------------------------------------------------

    def all(self) -> tuple[BudgetPolicy, ...]:
        return self._live.policies()

    def get(self, policy_id: str) -> BudgetPolicy:
        policy = self._live.policy(policy_id)
        if policy is None:
            invalid = self._live.invalid_policies.get(policy_id)
            if invalid is not None:
                raise RecordConflictError(
                    f"The stored budget {policy_id!r} is invalid and is not applied "
                    f"({invalid.problem}); delete it and create it again."
                )
            raise RecordNotFoundError(_WHAT, policy_id)
        return policy

    def invalid(self) -> tuple[InvalidPolicy, ...]:
        """Stored runtime budgets that fail validation (skipped at start-up)."""
        return tuple(self._live.invalid_policies.values())

    def effective(self, query: BudgetFilter) -> list[tuple[BudgetPolicy, str]]:
        """Every enabled policy that applies to requests of ``query``, with its member."""
        found: list[tuple[BudgetPolicy, str]] = []
        for policy in self._live.policies():
            member = query.scopes.matched_member(policy.scope)
            if policy.enabled and member is not None and query.admits(policy):
                found.append((policy, member))
        return found

    def consumption(
        self,
        policy: BudgetPolicy,
        members: Iterable[str] | None = None,
        *,
        now: datetime | None = None,
    ) -> list[Consumption]:
        """Use of ``policy`` in its current window from the in-memory ledger: for ``members``
        if given; else its one member, or for a ``*`` scope each member that has a counter in
        the current window."""
        at = now or datetime.now(UTC)
        if members is None:
            members = (
                self._members_in_window(policy, at)
                if policy.scope.each_member
                else [policy.scope.id]
            )
        ledger = self._live.governor.ledger
        result: list[Consumption] = []
        for member in members:
            keys, window = counters_for(policy, member, at)
            result.append(consumption(member, window, ledger.read_total(keys), policy.hard_limit))
        return result

    def _members_in_window(self, policy: BudgetPolicy, at: datetime) -> list[str]:
        """Members with usage in the current window, in-flight reservations included."""
        keys, _ = counters_for(policy, "*", at)
        ledger = self._live.governor.ledger
        return sorted(ledger.members(policy.counter_id, [key.window for key in keys]))

    # -- changing ----------------------------------------------------------------------------

    def create(self, document: object, *, actor: str) -> BudgetPolicy:
        live = self._live
        policy = parse_budget(live.config, document)
        with live.lock:
            policy = self._new_policy(policy)
            self._journal.policies.save(policy)
            live.api_policies[policy.id] = policy
            live.apply_policies()
        audit.info("budget %s created by %s", policy.id, actor)
        return policy

    def update(self, policy_id: str, changes: object, *, actor: str) -> BudgetPolicy:
        live = self._live
        with live.lock:
            current = self._api_policy(policy_id)
            policy = parse_budget(live.config, merged_document(current, changes))
            problems = counter_changes(current, policy)
            if problems:
                raise RecordInvalidError(problems)
            policy = replace(policy, generation=current.generation)  # the same counters
            self._journal.policies.save(policy)
            live.api_policies[policy_id] = policy
            live.apply_policies()
        audit.info("budget %s updated by %s", policy_id, actor)
        return policy

    def set_enabled(self, policy_id: str, enabled: bool, *, actor: str) -> BudgetPolicy:
        live = self._live
        with live.lock:
            policy = replace(self._api_policy(policy_id), enabled=enabled)
            self._journal.policies.set_enabled(policy_id, enabled)
            live.api_policies[policy_id] = policy
            live.apply_policies()
        audit.info("budget %s %s by %s", policy_id, "enabled" if enabled else "disabled", actor)
        return policy

    def delete(self, policy_id: str, *, actor: str) -> None:
        live = self._live
        with live.lock:
            if live.invalid_policies.pop(policy_id, None) is None:
                self._api_policy(policy_id)
                del live.api_policies[policy_id]
            self._journal.policies.delete(policy_id)
            live.apply_policies()
        audit.info("budget %s deleted by %s", policy_id, actor)

    def _api_policy(self, policy_id: str) -> BudgetPolicy:
        policy = self.get(policy_id)
        if policy.source != "api":
            raise ConfigManagedError(_WHAT, policy_id, self._live.config.source)
        return policy

    def _new_policy(self, policy: BudgetPolicy) -> BudgetPolicy:
        """``policy`` with the counters it would read, or a conflict if its id is taken."""
        policy_id = policy.id
        existing = self._live.policy(policy_id)
        if existing is not None:
            where = "the config file" if existing.source == "config" else "another runtime budget"
            raise RecordConflictError(f"The budget id {policy_id!r} is already used by {where}.")
        if policy_id in self._live.invalid_policies:
            raise RecordConflictError(
                f"The budget id {policy_id!r} is used by an invalid stored budget; delete it first."
            )
        # Counters are keyed by policy (counter) id: a new budget reusing a deleted one's id
        # with the same counting identity would start with the old budget's spend in its
        # "fresh" window.
        (policy,), _ = self._journal.counting.resolve([policy])
        self._journal.flush(5)
        if _has_counters(self._journal.engine, policy.counter_id):
            raise RecordConflictError(
                f"The budget id {policy_id!r} was used by a deleted budget whose usage is "
                "still counted; choose another id."
            )
        return policy


def _has_counters(engine: Engine, counter_id: str) -> bool:
    table = schema.usage_counters
    query = select(table.c.policy_id).where(table.c.policy_id == counter_id).limit(1)
    with engine.connect() as connection:
        return connection.execute(query).first() is not None
