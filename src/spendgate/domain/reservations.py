"""What a decision reserves before the call and what it settles after (pure arithmetic).

The ledger (an adapter) applies these lines atomically. Enforced mode reserves against the
hard limit of every policy whose hard action stops or degrades requests, so concurrent
requests can never overspend; dry_run reserves without limits (it records, never refuses);
suggest reserves nothing. Actual usage is settled in every mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from spendgate.domain.budgets import (
    BudgetEvaluation,
    BudgetStatus,
    CounterKey,
    HardAction,
    Metric,
    OverrideGrant,
    counters_for,
)
from spendgate.domain.pricing import Usage
from spendgate.domain.routing import RoutingDecision, RoutingMode

__all__ = ["ReservationLine", "reservation_lines", "settlement", "usage_amount"]

_LIMITED_ACTIONS = frozenset({HardAction.BLOCK, HardAction.REQUIRE_APPROVAL, HardAction.DEGRADE})


@dataclass(frozen=True, slots=True)
class ReservationLine:
    """Reserve ``amount`` on ``keys[-1]`` if the sum over ``keys`` stays within ``limit``.

    ``keys`` are one policy's window buckets (one for a calendar window, several for a rolling
    one); ``limit`` is ``None`` when the policy only observes (alert, dry run).
    """

    policy_id: str
    keys: tuple[CounterKey, ...]
    amount: Decimal
    limit: Decimal | None = None

    @property
    def record_key(self) -> CounterKey:
        return self.keys[-1]


def _limit(
    evaluation: BudgetEvaluation, mode: RoutingMode, grant: OverrideGrant | None
) -> Decimal | None:
    if mode is not RoutingMode.ENFORCED:
        return None
    if evaluation.status is BudgetStatus.OVERRIDE_APPLIED and grant is not None:
        return None if grant.extra is None else evaluation.hard_limit + grant.extra
    if evaluation.policy.hard_action in _LIMITED_ACTIONS:
        return evaluation.hard_limit
    return None


def reservation_lines(
    decision: RoutingDecision, grants: Mapping[str, OverrideGrant] | None = None
) -> tuple[ReservationLine, ...]:
    """The upper-bound usage to reserve for ``decision``, one line per applicable policy."""
    if decision.mode is RoutingMode.SUGGEST or decision.blocked:
        return ()
    lines: list[ReservationLine] = []
    for evaluation in decision.budget_evaluations:
        if evaluation.request_amount is None:  # unpriced under a USD policy: nothing to count
            continue
        keys, _ = counters_for(evaluation.policy, evaluation.member, decision.created_at)
        grant = (grants or {}).get(evaluation.policy_id)
        lines.append(
            ReservationLine(
                evaluation.policy_id,
                keys,
                evaluation.request_amount,
                _limit(evaluation, decision.mode, grant),
            )
        )
    return tuple(lines)


def usage_amount(metric: Metric, usage: Usage, cost_usd: Decimal | None) -> Decimal | None:
    if metric is Metric.REQUESTS:
        return Decimal(1)
    if metric is Metric.TOKENS:
        return Decimal(usage.total_tokens)
    return cost_usd


def settlement(
    decision: RoutingDecision,
    usage: Usage,
    cost_usd: Decimal | None,
    at: datetime | None = None,
) -> dict[CounterKey, Decimal]:
    """Actual usage per counter, recorded in the window of the request's start time."""
    when = at or decision.created_at
    amounts: dict[CounterKey, Decimal] = {}
    for evaluation in decision.budget_evaluations:
        amount = usage_amount(evaluation.metric, usage, cost_usd)
        if amount is None:
            continue
        keys, _ = counters_for(evaluation.policy, evaluation.member, when)
        key = keys[-1]
        amounts[key] = amounts.get(key, Decimal(0)) + amount
    return amounts
