"""What a decision reserves before the call and what it settles after (pure arithmetic).

The ledger (an adapter) applies these lines atomically. Enforced mode reserves against the
hard limit of every policy whose hard action stops or degrades requests, so concurrent
requests can never overspend; dry_run reserves without limits (it records, never refuses);
suggest reserves nothing. Actual usage is settled in every mode.

Amounts are integer attos (``domain.amounts``): what the ledgers add and compare.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from spendgate.domain.amounts import ATTO, from_atto, to_atto
from spendgate.domain.budgets import (
    BudgetEvaluation,
    BudgetStatus,
    CounterKey,
    HardAction,
    Metric,
    OverrideGrant,
    counters_for,
    new_tuple,
)
from spendgate.domain.pricing import Usage
from spendgate.domain.routing import RoutingDecision, RoutingMode

__all__ = ["ReservationLine", "reservation_lines", "settlement", "usage_amount"]

_LIMITED_ACTIONS = frozenset({HardAction.BLOCK, HardAction.REQUIRE_APPROVAL, HardAction.DEGRADE})


class ReservationLine(NamedTuple):
    """Reserve ``amount_atto`` on ``keys[-1]`` if the sum over ``keys`` stays within
    ``limit_atto`` (attos; ``amount`` and ``limit`` are their ``Decimal`` values).

    ``keys`` are one policy's window buckets (one for a calendar window, several for a rolling
    one); ``limit_atto`` is ``None`` when the policy only observes (alert, dry run).
    ``consumed_atto`` is the sum over ``keys`` planning read (``None``: not read), which a
    ledger that can tell nothing changed since reuses instead of reading the counters again.
    A NamedTuple: one per applicable policy per request, so construction cost matters.
    """

    policy_id: str
    keys: tuple[CounterKey, ...]
    amount_atto: int
    limit_atto: int | None = None
    consumed_atto: int | None = None

    @classmethod
    def of(
        cls,
        policy_id: str,
        keys: tuple[CounterKey, ...],
        amount: Decimal,
        limit: Decimal | None = None,
    ) -> ReservationLine:
        """A line of ``Decimal`` amounts (rounded up to attos past 18 places)."""
        return cls(policy_id, keys, to_atto(amount), None if limit is None else to_atto(limit))

    @property
    def amount(self) -> Decimal:
        return from_atto(self.amount_atto)

    @property
    def limit(self) -> Decimal | None:
        return None if self.limit_atto is None else from_atto(self.limit_atto)

    @property
    def record_key(self) -> CounterKey:
        return self.keys[-1]


def _keys(evaluation: BudgetEvaluation, at: datetime) -> tuple[CounterKey, ...]:
    """The counters planning read (an evaluation built without them has none)."""
    return evaluation.keys or counters_for(evaluation.policy, evaluation.member, at)[0]


def reservation_lines(
    decision: RoutingDecision, grants: Mapping[str, OverrideGrant] | None = None
) -> tuple[ReservationLine, ...]:
    """The upper-bound usage to reserve for ``decision``, one line per applicable policy.

    A line is limited (``limit`` not ``None``) only in enforced mode: by the hard limit when
    the policy's hard action stops requests, by the hard limit plus the grant's extra when an
    approved override applies (unlimited when the grant has no extra). One line per applicable
    policy per request, so the loop is kept flat.
    """
    mode = decision.mode
    if mode is RoutingMode.SUGGEST or decision.blocked:
        return ()
    grants = grants or {}
    at = decision.created_at
    enforced = mode is RoutingMode.ENFORCED
    lines: list[ReservationLine] = []
    for evaluation in decision.budget_evaluations:
        if evaluation.request_amount is None:  # unpriced under a USD policy: nothing to count
            continue
        amount = evaluation.amount_atto
        if amount is None:  # an evaluation built without it (decoded from the journal)
            amount = to_atto(evaluation.request_amount)
        policy = evaluation.policy
        limit: int | None = None
        if enforced:
            grant = grants.get(policy.id)
            if evaluation.status is BudgetStatus.OVERRIDE_APPLIED and grant is not None:
                limit = None if grant.extra is None else policy.hard_atto + to_atto(grant.extra)
            elif policy.hard_action in _LIMITED_ACTIONS:
                limit = policy.hard_atto
        keys = evaluation.keys or _keys(evaluation, at)
        consumed = evaluation.settled_atto + evaluation.reserved_atto
        lines.append(new_tuple(ReservationLine, (policy.id, keys, amount, limit, consumed)))
    return tuple(lines)


def usage_amount(metric: Metric, usage: Usage, cost_usd: Decimal | None) -> int | None:
    """Actual usage in ``metric``, in attos (``None``: an unpriced cost)."""
    if metric is Metric.REQUESTS:
        return ATTO
    if metric is Metric.TOKENS:
        return usage.total_tokens * ATTO
    return None if cost_usd is None else to_atto(cost_usd)


def settlement(
    decision: RoutingDecision, usage: Usage, cost_usd: Decimal | None
) -> dict[CounterKey, int]:
    """Actual usage per counter in attos, recorded in the window of the request's start
    time."""
    by_metric = {metric: usage_amount(metric, usage, cost_usd) for metric in Metric}
    at = decision.created_at
    amounts: dict[CounterKey, int] = {}
    for evaluation in decision.budget_evaluations:
        amount = by_metric[evaluation.policy.metric]
        if amount is None:
            continue
        key = _keys(evaluation, at)[-1]
        previous = amounts.get(key)
        amounts[key] = amount if previous is None else previous + amount
    return amounts
