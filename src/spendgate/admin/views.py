"""JSON views of routing decisions (planned, explained or journaled), as pydantic response models
so the OpenAPI document describes them exactly.

Amounts are exact decimal strings (never floats); datetimes are ISO 8601 with an offset;
windows are ``{"start", "end"}``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel

from spendgate.domain.budgets import BudgetEvaluation
from spendgate.domain.complexity import ComplexityScore
from spendgate.domain.pricing import PricingEstimate, Usage
from spendgate.domain.routing import Candidate, RoutingDecision, headline
from spendgate.domain.windows import Window
from spendgate.store.records import StoredDecision

__all__ = [
    "BudgetEvaluationView",
    "CandidateView",
    "ComplexityTermView",
    "ComplexityView",
    "DecisionDetail",
    "DecisionList",
    "DecisionSummary",
    "EstimateView",
    "PlannedDecision",
    "ScopesView",
    "UsageView",
    "WindowView",
    "decision_detail",
    "decision_summary",
    "money",
    "planned_decision",
]


def money(value: Decimal | None) -> str | None:
    """An exact decimal string without exponent (``1E+1`` → ``10``)."""
    if value is None:
        return None
    return format(value, "f")


class WindowView(BaseModel):
    start: datetime
    end: datetime

    @classmethod
    def of(cls, window: Window) -> WindowView:
        return cls(start=window.start, end=window.end)


class ScopesView(BaseModel):
    project: str | None
    principal: str | None
    api_key: str | None
    agent: str | None
    session: str | None


class ComplexityTermView(BaseModel):
    name: str
    contribution: float
    detail: str


class ComplexityView(BaseModel):
    score: float
    summary: str
    terms: list[ComplexityTermView]


class EstimateView(BaseModel):
    """Cost bounds before the call; costs are null when the model is unpriced."""

    model: str
    input_tokens_lower: int
    input_tokens_upper: int
    output_tokens_upper: int
    tokens_upper: int
    lower_usd: str | None
    upper_usd: str | None
    precision: str
    source: str | None
    unpriced: bool


class CandidateView(BaseModel):
    model: str
    provider: str
    cost_tier: str
    latency_tier: str
    health: str
    eligible: bool
    chosen: bool
    reason: str
    estimate: EstimateView | None


class BudgetEvaluationView(BaseModel):
    """One policy's verdict: counts in the policy's metric (USD, tokens or requests)."""

    policy_id: str
    scope: str  # the policy's scope, e.g. "principal:*"
    member: str  # the member this request counts under, e.g. "alice"
    metric: str
    window: WindowView
    settled: str
    reserved: str
    consumed: str  # settled + reserved
    request_amount: str | None  # this request's upper bound; null: unpriced
    projected: str
    soft_limit: str | None
    hard_limit: str
    remaining: str
    percent: str
    status: str
    outcome: str  # what the verdict does to the request
    threshold: str | None
    approval_id: str | None
    message: str


class UsageView(BaseModel):
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    total_tokens: int


class DecisionSummary(BaseModel):
    """A row of the decisions list."""

    id: str
    created_at: datetime
    mode: str
    project: str | None
    principal: str | None
    api_key: str | None
    agent: str | None
    session: str | None
    task_class: str
    requested_model: str
    recommended_model: str
    actual_model: str | None  # null: refused, no model called
    provider: str | None
    routing_action: str
    would_action: str | None
    reason_codes: list[str]
    headline: str | None  # the explanation's sentence that says what was decided
    estimated_cost_usd: str | None  # upper bound
    actual_cost_usd: str | None
    total_tokens: int | None
    latency_ms: float | None
    status: str | None


class DecisionList(BaseModel):
    data: list[DecisionSummary]
    next_cursor: str | None  # pass as ?cursor= for the next (older) page; null: no more


class RouteStepView(BaseModel):
    model: str
    provider: str


class PlannedDecision(BaseModel):
    """A decision as planned: what ``explain`` returns, and the core of a journaled one."""

    id: str
    created_at: datetime
    mode: str
    scopes: ScopesView
    task_class: str
    requested_model: str
    default_model: str
    recommended_model: str
    actual_model: str | None  # null: refused, no model called (or, explained, would be)
    provider: str | None
    routing_action: str
    would_action: str | None  # suggest / dry_run: what enforcement would have done
    estimated_saving_usd: str | None  # upper bound, at planning: requested worst case - target's
    blocked: bool
    reason_codes: list[str]
    explanation: list[str]
    health: str
    complexity: ComplexityView
    estimate: EstimateView
    candidates: list[CandidateView]
    budget_evaluations: list[BudgetEvaluationView]
    fallbacks: list[str]
    # Where the call fails over, in order: the model's other deployments, then the fallbacks'.
    route: list[RouteStepView]


class AttemptView(BaseModel):
    """One candidate tried (or skipped) when the request failed over."""

    model: str
    provider: str
    outcome: str  # "ok", the error ("timeout", "server_error", …) or why it was skipped
    may_have_billed: bool  # sent, then timed out or broke: settled on its estimated input
    decision_id: str | None  # the journaled decision holding its settlement or refusal
    usage: UsageView | None
    cost_usd: str | None


class DecisionDetail(PlannedDecision):
    """A journaled decision, with what really happened once settled."""

    attempts: list[AttemptView]  # empty unless the request failed over
    status: str | None
    usage: UsageView | None
    usage_estimated: bool | None
    actual_cost_usd: str | None
    # Served by another model than requested: what its usage would have cost on the requested
    # one. The difference with actual_cost_usd is what routing saved (or escalation added).
    requested_cost_usd: str | None
    latency_ms: float | None
    settled_at: datetime | None


# -- builders ------------------------------------------------------------------------------------


def _estimate(estimate: PricingEstimate) -> EstimateView:
    return EstimateView(
        model=estimate.model,
        input_tokens_lower=estimate.input_tokens_lower,
        input_tokens_upper=estimate.input_tokens_upper,
        output_tokens_upper=estimate.output_tokens_upper,
        tokens_upper=estimate.tokens_upper,
        lower_usd=money(estimate.lower_usd),
        upper_usd=money(estimate.upper_usd),
        precision=estimate.precision.value,
        source=estimate.source.value if estimate.source is not None else None,
        unpriced=estimate.unpriced,
    )


def _complexity(score: ComplexityScore) -> ComplexityView:
    return ComplexityView(
        score=score.score,
        summary=score.describe(),
        terms=[
            ComplexityTermView(name=t.name, contribution=t.contribution, detail=t.detail)
            for t in score.terms
        ],
    )


def _candidate(candidate: Candidate, decision: RoutingDecision) -> CandidateView:
    return CandidateView(
        model=candidate.model,
        provider=candidate.provider,
        cost_tier=candidate.cost_tier.value,
        latency_tier=candidate.latency_tier.value,
        health=candidate.health.value,
        eligible=candidate.eligible,
        chosen=candidate.model == decision.actual_model,
        reason=candidate.reason,
        estimate=_estimate(candidate.estimate) if candidate.estimate is not None else None,
    )


# What a verdict does to the request, by status (BudgetStatus values).
_OUTCOMES = {
    "ok": "within budget",
    "threshold": "alert threshold crossed",
    "soft_limit": "soft limit crossed: alert",
    "override_applied": "over the limit, allowed by an approved override",
    "unpriced": "unpriced model: counted as reported, not as $0",
    "hard_limit": "hard limit reached: alert only",
    "degraded": "degrade to a cheaper model",
    "approval_required": "needs an approval",
    "blocked": "blocked",
}


def _evaluation(evaluation: BudgetEvaluation) -> BudgetEvaluationView:
    status = evaluation.status.value
    return BudgetEvaluationView(
        policy_id=evaluation.policy_id,
        scope=str(evaluation.policy.scope),
        member=evaluation.member,
        metric=evaluation.metric.value,
        window=WindowView.of(evaluation.window),
        settled=money(evaluation.settled) or "0",
        reserved=money(evaluation.reserved) or "0",
        consumed=money(evaluation.consumed) or "0",
        request_amount=money(evaluation.request_amount),
        projected=money(evaluation.projected) or "0",
        soft_limit=money(evaluation.soft_limit),
        hard_limit=money(evaluation.hard_limit) or "0",
        remaining=money(evaluation.remaining) or "0",
        percent=money(round(evaluation.percent, 2)) or "0",
        status=status,
        outcome=_OUTCOMES.get(status, status),
        threshold=money(evaluation.threshold),
        approval_id=evaluation.approval_id,
        message=evaluation.message,
    )


def _planned_fields(decision: RoutingDecision) -> dict[str, object]:
    scopes = decision.scopes
    return {
        "id": decision.id,
        "created_at": decision.created_at,
        "mode": decision.mode.value,
        "scopes": ScopesView(
            project=scopes.project,
            principal=scopes.principal,
            api_key=scopes.api_key,
            agent=scopes.agent,
            session=scopes.session,
        ),
        "task_class": decision.task_class.value,
        "requested_model": decision.requested_model,
        "default_model": decision.default_model,
        "recommended_model": decision.recommended_model,
        "actual_model": decision.actual_model,
        "provider": decision.provider,
        "routing_action": decision.routing_action.value,
        "would_action": decision.would_action.value if decision.would_action else None,
        "estimated_saving_usd": money(decision.estimated_saving_usd),
        "blocked": decision.blocked,
        "reason_codes": list(decision.reason_codes),
        "explanation": list(decision.explanation),
        "health": decision.health.value,
        "complexity": _complexity(decision.complexity),
        "estimate": _estimate(decision.estimate),
        "candidates": [_candidate(c, decision) for c in decision.candidates],
        "budget_evaluations": [_evaluation(e) for e in decision.budget_evaluations],
        "fallbacks": list(decision.fallbacks),
        "route": [RouteStepView(model=s.model, provider=s.provider) for s in decision.route],
    }


def planned_decision(decision: RoutingDecision) -> PlannedDecision:
    return PlannedDecision.model_validate(_planned_fields(decision))


def _usage(usage: Usage | None) -> UsageView | None:
    if usage is None:
        return None
    return UsageView(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        total_tokens=usage.total_tokens,
    )


def decision_detail(stored: StoredDecision) -> DecisionDetail:
    decision = stored.decision
    return DecisionDetail.model_validate(
        {
            **_planned_fields(decision),
            "attempts": [
                AttemptView(
                    model=a.model,
                    provider=a.provider,
                    outcome=a.outcome,
                    may_have_billed=a.may_have_billed,
                    decision_id=a.decision_id,
                    usage=_usage(a.usage),
                    cost_usd=money(a.cost_usd),
                )
                for a in decision.attempts
            ],
            "status": decision.status,
            "usage": _usage(decision.usage),
            "usage_estimated": stored.usage_estimated,
            "actual_cost_usd": money(decision.actual_cost_usd),
            "requested_cost_usd": money(decision.requested_cost_usd),
            "latency_ms": decision.latency_ms,
            "settled_at": stored.settled_at,
        }
    )


def decision_summary(stored: StoredDecision) -> DecisionSummary:
    decision = stored.decision
    scopes = decision.scopes
    return DecisionSummary(
        id=decision.id,
        created_at=decision.created_at,
        mode=decision.mode.value,
        project=scopes.project,
        principal=scopes.principal,
        api_key=scopes.api_key,
        agent=scopes.agent,
        session=scopes.session,
        task_class=decision.task_class.value,
        requested_model=decision.requested_model,
        recommended_model=decision.recommended_model,
        actual_model=decision.actual_model,
        provider=decision.provider,
        routing_action=decision.routing_action.value,
        would_action=decision.would_action.value if decision.would_action else None,
        reason_codes=list(decision.reason_codes),
        headline=headline(decision.reason_codes, decision.explanation),
        estimated_cost_usd=money(decision.estimate.upper_usd),
        actual_cost_usd=money(decision.actual_cost_usd),
        total_tokens=decision.usage.total_tokens if decision.usage is not None else None,
        latency_ms=decision.latency_ms,
        status=decision.status,
    )
