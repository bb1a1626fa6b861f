"""Routing: modes, task classes, candidates and the per-request RoutingDecision."""

from __future__ import annotations

from dataclasses import dataclass
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
    "Candidate",
    "HealthState",
    "RoutingAction",
    "RoutingDecision",
    "RoutingMode",
    "RoutingSettings",
    "TaskClass",
    "UpstreamAttempt",
]


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
    actual_model: str
    provider: str
    complexity: ComplexityScore
    health: HealthState
    routing_action: RoutingAction
    reason_codes: tuple[str, ...]
    explanation: tuple[str, ...]
    estimate: PricingEstimate
    budget_evaluations: tuple[BudgetEvaluation, ...]
    candidates: tuple[Candidate, ...] = ()
    would_action: RoutingAction | None = None  # dry_run/suggest: what enforcement would do
    estimated_saving_usd: Decimal | None = None
    # Where to fail over if the actual model's provider fails before answering, in order.
    fallbacks: tuple[str, ...] = ()
    usage: Usage | None = None
    actual_cost_usd: Decimal | None = None
    latency_ms: float | None = None
    status: str | None = None
    # Filled when the request failed over: every candidate tried or skipped, in order.
    attempts: tuple[UpstreamAttempt, ...] = ()

    @property
    def blocked(self) -> bool:
        return self.routing_action in (RoutingAction.BLOCK, RoutingAction.APPROVAL_REQUIRED)
