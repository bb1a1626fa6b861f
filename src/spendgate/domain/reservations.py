"""What a decision reserves before the call and what it settles after (pure arithmetic).

The ledger (an adapter) applies these lines atomically. Enforced mode reserves against the
hard limit of every policy whose hard action stops or degrades requests, so concurrent
requests can never overspend; dry_run reserves without limits (it records, never refuses);
suggest reserves nothing. Actual usage is settled in every mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

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


class ReservationLine(NamedTuple):
    """Reserve ``amount`` on ``keys[-1]`` if the sum over ``keys`` stays within ``limit``.

    ``keys`` are one policy's window buckets (one for a calendar window, several for a rolling
    one); ``limit`` is ``None`` when the policy only observes (alert, dry run). A NamedTuple:
    one per applicable policy per request, so construction cost matters.
    """

    policy_id: str
    keys: tuple[CounterKey, ...]
    amount: Decimal
    limit: Decimal | None = None

    @property
    def record_key(self) -> CounterKey:
        return self.keys[-1]


def _keys(evaluation: BudgetEvaluation, at: datetime) -> tuple[CounterKey, ...]:
    """The counters planning read (an evaluation decoded from the journal has none)."""
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
        amount = evaluation.request_amount
        if amount is None:  # unpriced under a USD policy: nothing to count
            continue
        policy = evaluation.policy
        limit: Decimal | None = None
        if enforced:
            grant = grants.get(policy.id)
            if evaluation.status is BudgetStatus.OVERRIDE_APPLIED and grant is not None:
                limit = None if grant.extra is None else policy.hard_limit + grant.extra
            elif policy.hard_action in _LIMITED_ACTIONS:
                limit = policy.hard_limit
        lines.append(ReservationLine(policy.id, _keys(evaluation, at), amount, limit))
    return tuple(lines)


def usage_amount(metric: Metric, usage: Usage, cost_usd: Decimal | None) -> Decimal | None:
    if metric is Metric.REQUESTS:
        return Decimal(1)
    if metric is Metric.TOKENS:
        return Decimal(usage.total_tokens)
    return cost_usd


def settlement(
    decision: RoutingDecision, usage: Usage, cost_usd: Decimal | None
) -> dict[CounterKey, Decimal]:
    """Actual usage per counter, recorded in the window of the request's start time."""
    by_metric = {metric: usage_amount(metric, usage, cost_usd) for metric in Metric}
    at = decision.created_at
    amounts: dict[CounterKey, Decimal] = {}
    for evaluation in decision.budget_evaluations:
        amount = by_metric[evaluation.policy.metric]
        if amount is None:
            continue
        key = _keys(evaluation, at)[-1]
        previous = amounts.get(key)
        amounts[key] = amount if previous is None else previous + amount
    return amounts
