"""Routing: modes, task classes, candidates and the per-request RoutingDecision."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from spendgate.domain.budgets import BudgetEvaluation
from spendgate.domain.complexity import ComplexityScore
from spendgate.domain.models import Tier
from spendgate.domain.modes import RoutingMode
from spendgate.domain.pricing import PricingEstimate, Usage
from spendgate.domain.scopes import RequestScopes

__all__ = [
    "REFUSED",
    "Candidate",
    "HealthState",
    "RouteStep",
    "RoutingAction",
    "RoutingDecision",
    "RoutingMode",
    "RoutingSettings",
    "TaskClass",
    "UpstreamAttempt",
    "headline",
    "routing_difference",
]


# The status of a decision the ledger refused at reserve time.
REFUSED = "refused"


class TaskClass(StrEnum):
    PRIMARY_INTERACTIVE = "primary_interactive"
    BACKGROUND_AUTOMATION = "background_automation"
    AUXILIARY_SUMMARY = "auxiliary_summary"
    AUXILIARY_RECALL = "auxiliary_recall"
    AUXILIARY_CLASSIFICATION = "auxiliary_classification"
    AUXILIARY_EXTRACTION = "auxiliary_extraction"
    AUXILIARY_VISION = "auxiliary_vision"


class RoutingAction(StrEnum):
    PROCEED = "proceed"
    DEGRADE = "degrade"
    ESCALATE = "escalate"
    FAILOVER = "failover"
    BLOCK = "block"
    APPROVAL_REQUIRED = "approval_required"


class HealthState(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    default_model: str
    mode: RoutingMode = RoutingMode.SUGGEST
    smart_routing: bool = True
    auxiliary_routing: bool = True
    failover: bool = True
    simple_below: float = 0.35
    complex_above: float = 0.75


@dataclass(frozen=True, slots=True)
class Candidate:
    """A model considered for a request, and why it was or was not chosen."""

    model: str
    provider: str
    cost_tier: Tier
    latency_tier: Tier
    health: HealthState
    estimate: PricingEstimate | None  # None unless planned with ``explain``
    eligible: bool
    reason: str


@dataclass(frozen=True, slots=True)
class RouteStep:
    """A place a call may go: a model on one of its deployments (named by provider)."""

    model: str
    provider: str


@dataclass(frozen=True, slots=True)
class UpstreamAttempt:
    """One candidate tried (or skipped) while a request failed over: what happened, whether
    the provider may have billed it (a timeout or broken connection after the request was
    sent) and what was settled for it (its estimated input, under ``decision_id``)."""

    model: str
    provider: str
    outcome: str  # "ok", an error code ("timeout", "server_error", …) or "skipped_…"
    may_have_billed: bool = False
    decision_id: str | None = None  # the journaled decision it was made under, if any
    usage: Usage | None = None  # settled, estimated: only when it may have been billed
    cost_usd: Decimal | None = None


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """One per request, always recorded. Usage fields are filled after the call."""

    id: str
    created_at: datetime
    mode: RoutingMode
    scopes: RequestScopes
    task_class: TaskClass
    requested_model: str
    default_model: str
    recommended_model: str
    # The candidate the plan chose, priced and reserved for: the call goes there unless the
    # decision is refused (then no call is made: ``actual_model`` and ``provider`` are None).
    target_model: str
    target_provider: str
    complexity: ComplexityScore
    health: HealthState
    routing_action: RoutingAction
    reason_codes: tuple[str, ...]
    explanation: tuple[str, ...]
    estimate: PricingEstimate
    budget_evaluations: tuple[BudgetEvaluation, ...]
    candidates: tuple[Candidate, ...] = ()
    would_action: RoutingAction | None = None  # dry_run/suggest: what enforcement would do
    # At planning, an upper bound: the requested model's worst case minus the target's.
    estimated_saving_usd: Decimal | None = None
    # The other models to fail over to if the actual model fails before answering, in order.
    fallbacks: tuple[str, ...] = ()
    # Every step of that failover, in order: the actual model on its other healthy
    # deployments first (by weight), then each fallback model on its deployments.
    route: tuple[RouteStep, ...] = ()
    usage: Usage | None = None
    actual_cost_usd: Decimal | None = None
    # Settled on another model than requested: what the usage would have cost on the
    # requested one (the counterfactual that savings and escalations' extra are measured by).
    requested_cost_usd: Decimal | None = None
    latency_ms: float | None = None
    status: str | None = None
    # Filled when the request failed over: every candidate tried or skipped, in order.
    attempts: tuple[UpstreamAttempt, ...] = ()
    # The ledger's version before planning read the counters (``MemoryLedger.version``), or
    # None: while it is current, the reservation reuses the sums the evaluations hold. Not
    # recorded, not compared: it says when the decision was made, not what it is.
    counters_read_at: int | None = field(default=None, compare=False, repr=False)

    @property
    def blocked(self) -> bool:
        return self.routing_action in (RoutingAction.BLOCK, RoutingAction.APPROVAL_REQUIRED)

    @property
    def refused(self) -> bool:
        """No call was made for it: its plan blocked it, or the ledger refused its reservation
        (usage moved since planning)."""
        return self.blocked or self.status == REFUSED

    @property
    def actual_model(self) -> str | None:
        """The model called: None when the decision is refused."""
        return None if self.refused else self.target_model

    @property
    def provider(self) -> str | None:
        """The provider called: None when the decision is refused."""
        return None if self.refused else self.target_provider


def routing_difference(
    requested_cost_usd: Decimal | None, actual_cost_usd: Decimal | None
) -> tuple[Decimal, Decimal]:
    """(saved, extra) of one settled request that ran on another model than requested: what
    its actual usage would have cost on the requested model, less what it cost (saved), or
    the reverse when the model used was dearer (extra, from an escalation or a failover).
    Nothing when either cost is unknown: a saving is never guessed."""
    if requested_cost_usd is None or actual_cost_usd is None:
        return _ZERO, _ZERO
    difference = requested_cost_usd - actual_cost_usd
    return (difference, _ZERO) if difference > 0 else (_ZERO, -difference)


_ZERO = Decimal(0)


# Reasons that say how a decision was made rather than what it decided: a headline skips them.
_BACKGROUND_REASONS = frozenset({"budget_ok", "output_ceiling_applied"})
# What stopped a request says more than how it would have been routed.
_REFUSING_REASONS = frozenset({"budget_blocked", "budget_approval_required"})


def headline(reason_codes: Sequence[str], explanation: Sequence[str]) -> str | None:
    """The one sentence that says what a decision did ("A simple prompt … goes to the cheaper
    gpt-4o-mini."), for lists: the first whose reason is not the mode's or a routine one, else
    the first sentence; a refusal's reason comes first. Explanations are written one sentence
    per reason code."""
    for code, sentence in zip(reason_codes, explanation, strict=False):
        if code in _REFUSING_REASONS:
            return sentence
    for code, sentence in zip(reason_codes, explanation, strict=False):
        if not code.startswith("mode_") and code not in _BACKGROUND_REASONS:
            return sentence
    return explanation[0] if explanation else None
