"""Domain records ↔ table rows. Pure functions: no I/O, no SQLAlchemy sessions.

A decision's scalar facts become columns (filterable, indexed); the variable-length rest goes to
the compact ``detail`` JSON, with short keys and absent values omitted, because it is written once
per request (see docs/journal.md for a typical size). Amounts in JSON are decimal *strings*, so
they round-trip exactly; floats (complexity) are JSON numbers, which orjson round-trips exactly.
``decision_from_row(decision_row(d))`` rebuilds a decision equal to ``d``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendgate.domain.budgets import (
    BudgetEvaluation,
    BudgetFilters,
    BudgetPolicy,
    BudgetStatus,
    HardAction,
    Metric,
    SoftAction,
)
from spendgate.domain.complexity import ComplexityScore, ComplexityTerm
from spendgate.domain.models import Tier
from spendgate.domain.pricing import (
    PriceSource,
    Precision,
    PricingEstimate,
    PricingRecord,
    Usage,
)
from spendgate.domain.routing import (
    Candidate,
    HealthState,
    RoutingAction,
    RoutingDecision,
    RoutingMode,
    TaskClass,
)
from spendgate.domain.scopes import RequestScopes, ScopeKind, ScopeRef
from spendgate.domain.windows import Interval, IntervalKind, Window
from spendgate.store.money import from_text, to_text
from spendgate.store.records import StoredDecision, StoredPrice

__all__ = [
    "DETAIL_VERSION",
    "decision_from_row",
    "decision_row",
    "hour_start",
    "policy_from_row",
    "policy_spec",
    "price_from_row",
    "price_row",
    "settlement_values",
]

DETAIL_VERSION = 1
Row = Mapping[str, Any]


# --- small helpers -------------------------------------------------------------------------


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else to_text(value)


def _undec(value: str | None) -> Decimal | None:
    return None if value is None else from_text(value)


def _compact(mapping: dict[str, Any]) -> dict[str, Any]:
    """Drop absent values: most optional fields are absent on most rows."""
    return {key: value for key, value in mapping.items() if value is not None}


def hour_start(at: datetime) -> datetime:
    """The UTC hour bucket of an instant (rollups are hourly in UTC; local days sum hours)."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


# --- decisions -----------------------------------------------------------------------------


def _estimate_json(estimate: PricingEstimate, model: str) -> dict[str, Any]:
    return _compact(
        {
            "m": estimate.model if estimate.model != model else None,
            "il": estimate.input_tokens_lower,
            "iu": estimate.input_tokens_upper,
            "ou": estimate.output_tokens_upper,
            "lo": _dec(estimate.lower_usd),
            "up": _dec(estimate.upper_usd),
            "pr": estimate.precision.value,
            "src": estimate.source.value if estimate.source is not None else None,
        }
    )


def _estimate_from_json(data: Mapping[str, Any], model: str) -> PricingEstimate:
    source = data.get("src")
    return PricingEstimate(
        model=data.get("m", model),
        input_tokens_lower=data["il"],
        input_tokens_upper=data["iu"],
        output_tokens_upper=data["ou"],
        lower_usd=_undec(data.get("lo")),
        upper_usd=_undec(data.get("up")),
        precision=Precision(data["pr"]),
        source=PriceSource(source) if source is not None else None,
    )


def _evaluation_json(evaluation: BudgetEvaluation) -> dict[str, Any]:
    return _compact(
        {
            "p": evaluation.policy_id,
            "sk": evaluation.scope.kind.value,
            "si": evaluation.scope.id,
            "mb": evaluation.member,
            "mt": evaluation.metric.value,
            "w": [_iso(evaluation.window.start), _iso(evaluation.window.end)],
            "s": to_text(evaluation.settled),
            "r": to_text(evaluation.reserved),
            "a": _dec(evaluation.request_amount),
            "sl": _dec(evaluation.soft_limit),
            "hl": to_text(evaluation.hard_limit),
            "st": evaluation.status.value,
            "msg": evaluation.message,
            "th": _dec(evaluation.threshold),
            "dg": evaluation.degrade_to,
            "ap": evaluation.approval_id,
        }
    )


def _evaluation_from_json(data: Mapping[str, Any]) -> BudgetEvaluation:
    start, end = data["w"]
    return BudgetEvaluation(
        policy_id=data["p"],
        scope=ScopeRef(ScopeKind(data["sk"]), data["si"]),
        member=data["mb"],
        metric=Metric(data["mt"]),
        window=Window(_from_iso(start), _from_iso(end)),
        settled=from_text(data["s"]),
        reserved=from_text(data["r"]),
        request_amount=_undec(data.get("a")),
        soft_limit=_undec(data.get("sl")),
        hard_limit=from_text(data["hl"]),
        status=BudgetStatus(data["st"]),
        message=data["msg"],
        threshold=_undec(data.get("th")),
        degrade_to=data.get("dg"),
        approval_id=data.get("ap"),
    )


def _candidate_json(candidate: Candidate) -> dict[str, Any]:
    return {
        "m": candidate.model,
        "pv": candidate.provider,
        "ct": candidate.cost_tier.value,
        "lt": candidate.latency_tier.value,
        "h": candidate.health.value,
        "ok": candidate.eligible,
        "why": candidate.reason,
        "e": _estimate_json(candidate.estimate, candidate.model),
    }


def _candidate_from_json(data: Mapping[str, Any]) -> Candidate:
    return Candidate(
        model=data["m"],
        provider=data["pv"],
        cost_tier=Tier(data["ct"]),
        latency_tier=Tier(data["lt"]),
        health=HealthState(data["h"]),
        estimate=_estimate_from_json(data["e"], data["m"]),
        eligible=data["ok"],
        reason=data["why"],
    )


def _detail(decision: RoutingDecision) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "v": DETAIL_VERSION,
        "expl": list(decision.explanation),
        "est": _estimate_json(decision.estimate, decision.actual_model),
        "cx": [[t.name, t.contribution, t.detail] for t in decision.complexity.terms],
        "ev": [_evaluation_json(e) for e in decision.budget_evaluations],
    }
    if decision.candidates:
        detail["cand"] = [_candidate_json(c) for c in decision.candidates]
    if decision.extra:
        detail["x"] = dict(decision.extra)
    return detail


def settlement_values(
    usage: Usage,
    cost_usd: Decimal | None,
    latency_ms: float | None,
    status: str,
    usage_estimated: bool,
    settled_at: datetime,
) -> dict[str, Any]:
    """The columns a settlement fills in."""
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "actual_cost_usd": cost_usd,
        "latency_ms": latency_ms,
        "status": status,
        "usage_estimated": usage_estimated,
        "settled_at": settled_at,
    }


def decision_row(
    decision: RoutingDecision, *, usage_estimated: bool = False, now: datetime | None = None
) -> dict[str, Any]:
    """The ``routing_decisions`` row of a decision (settled already when it carries usage)."""
    scopes = decision.scopes
    row: dict[str, Any] = {
        "id": decision.id,
        "created_at": decision.created_at,
        "mode": decision.mode.value,
        "project": scopes.project,
        "principal": scopes.principal,
        "api_key": scopes.api_key,
        "agent": scopes.agent,
        "session": scopes.session,
        "task_class": decision.task_class.value,
        "requested_model": decision.requested_model,
        "default_model": decision.default_model,
        "recommended_model": decision.recommended_model,
        "actual_model": decision.actual_model,
        "provider": decision.provider,
        "routing_action": decision.routing_action.value,
        "would_action": decision.would_action.value if decision.would_action else None,
        "health": decision.health.value,
        "complexity": decision.complexity.score,
        "estimated_lower_usd": decision.estimate.lower_usd,
        "estimated_upper_usd": decision.estimate.upper_usd,
        "precision": decision.estimate.precision.value,
        "estimated_saving_usd": decision.estimated_saving_usd,
        "reason_codes": list(decision.reason_codes),
        "detail": _detail(decision),
    }
    if decision.usage is not None:
        row.update(
            settlement_values(
                decision.usage,
                decision.actual_cost_usd,
                decision.latency_ms,
                decision.status or "ok",
                usage_estimated,
                now or datetime.now(UTC),
            )
        )
    else:
        row.update(
            dict.fromkeys(
                (
                    "input_tokens",
                    "output_tokens",
                    "cached_input_tokens",
                    "actual_cost_usd",
                    "latency_ms",
                    "status",
                    "usage_estimated",
                    "settled_at",
                )
            )
        )
    return row


def decision_from_row(row: Row) -> StoredDecision:
    detail: Mapping[str, Any] = row["detail"]
    if detail.get("v") != DETAIL_VERSION:
        raise ValueError(f"decision {row['id']}: unknown detail version {detail.get('v')!r}")
    actual_model: str = row["actual_model"]
    estimate = _estimate_from_json(detail["est"], actual_model)
    # Bounds and precision live in columns (the console filters on them), tokens in detail.
    estimate = PricingEstimate(
        model=estimate.model,
        input_tokens_lower=estimate.input_tokens_lower,
        input_tokens_upper=estimate.input_tokens_upper,
        output_tokens_upper=estimate.output_tokens_upper,
        lower_usd=row["estimated_lower_usd"],
        upper_usd=row["estimated_upper_usd"],
        precision=Precision(row["precision"]),
        source=estimate.source,
    )
    settled = row["input_tokens"] is not None
    usage = (
        Usage(row["input_tokens"], row["output_tokens"], row["cached_input_tokens"])
        if settled
        else None
    )
    would = row["would_action"]
    decision = RoutingDecision(
        id=row["id"],
        created_at=row["created_at"],
        mode=RoutingMode(row["mode"]),
        scopes=RequestScopes(
            project=row["project"],
            principal=row["principal"],
            api_key=row["api_key"],
            agent=row["agent"],
            session=row["session"],
        ),
        task_class=TaskClass(row["task_class"]),
        requested_model=row["requested_model"],
        default_model=row["default_model"],
        recommended_model=row["recommended_model"],
        actual_model=actual_model,
        provider=row["provider"],
        complexity=ComplexityScore(
            row["complexity"], tuple(ComplexityTerm(n, c, d) for n, c, d in detail["cx"])
        ),
        health=HealthState(row["health"]),
        routing_action=RoutingAction(row["routing_action"]),
        reason_codes=tuple(row["reason_codes"]),
        explanation=tuple(detail["expl"]),
        estimate=estimate,
        budget_evaluations=tuple(_evaluation_from_json(e) for e in detail["ev"]),
        candidates=tuple(_candidate_from_json(c) for c in detail.get("cand", ())),
        would_action=RoutingAction(would) if would is not None else None,
        estimated_saving_usd=row["estimated_saving_usd"],
        usage=usage,
        actual_cost_usd=row["actual_cost_usd"],
        latency_ms=row["latency_ms"],
        status=row["status"],
        extra=dict(detail.get("x", {})),
    )
    return StoredDecision(decision, row["usage_estimated"], row["settled_at"])


# --- budget policies -----------------------------------------------------------------------


def _interval_json(interval: Interval) -> dict[str, Any]:
    duration = interval.duration
    seconds: float | None = None
    if duration is not None:
        total = duration.total_seconds()
        seconds = int(total) if total == int(total) else total
    return _compact({"kind": interval.kind.value, "timezone": interval.timezone, "seconds": seconds})


def _interval_from_json(data: Mapping[str, Any]) -> Interval:
    seconds = data.get("seconds")
    return Interval(
        IntervalKind(data["kind"]),
        timezone=data.get("timezone", "UTC"),
        duration=timedelta(seconds=seconds) if seconds is not None else None,
    )


def _names(values: frozenset[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)


def policy_spec(policy: BudgetPolicy) -> dict[str, Any]:
    """The JSON spec of a runtime policy (``id``, ``source``, ``enabled`` are columns)."""
    filters = policy.filters
    return _compact(
        {
            "scope": {"kind": policy.scope.kind.value, "id": policy.scope.id},
            "metric": policy.metric.value,
            "interval": _interval_json(policy.interval),
            "hard_limit": to_text(policy.hard_limit),
            "soft_limit": _dec(policy.soft_limit),
            "soft_action": policy.soft_action.value,
            "hard_action": policy.hard_action.value,
            "degrade_to": policy.degrade_to,
            "alert_thresholds": [to_text(t) for t in policy.alert_thresholds],
            "routing_mode_override": policy.routing_mode_override,
            "mode": policy.mode,
            "filters": _compact(
                {
                    "models": _names(filters.models),
                    "providers": _names(filters.providers),
                    "task_classes": _names(filters.task_classes),
                }
            ),
        }
    )


def _name_set(values: list[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


def policy_from_row(row: Row) -> BudgetPolicy:
    spec: Mapping[str, Any] = row["spec"]
    filters = spec.get("filters", {})
    return BudgetPolicy(
        id=row["id"],
        scope=ScopeRef(ScopeKind(spec["scope"]["kind"]), spec["scope"]["id"]),
        metric=Metric(spec["metric"]),
        interval=_interval_from_json(spec["interval"]),
        hard_limit=from_text(spec["hard_limit"]),
        soft_limit=_undec(spec.get("soft_limit")),
        soft_action=SoftAction(spec["soft_action"]),
        hard_action=HardAction(spec["hard_action"]),
        degrade_to=spec.get("degrade_to"),
        alert_thresholds=tuple(from_text(t) for t in spec["alert_thresholds"]),
        routing_mode_override=spec.get("routing_mode_override"),
        mode=spec.get("mode"),
        filters=BudgetFilters(
            models=_name_set(filters.get("models")),
            providers=_name_set(filters.get("providers")),
            task_classes=_name_set(filters.get("task_classes")),
        ),
        enabled=row["enabled"],
        source=row["source"],
    )


# --- pricing rows --------------------------------------------------------------------------


def price_row(record: PricingRecord) -> dict[str, Any]:
    return {
        "model": record.model,
        "input_per_mtok": record.input_per_mtok,
        "output_per_mtok": record.output_per_mtok,
        "cached_input_per_mtok": record.cached_input_per_mtok,
        "per_request": record.per_request,
        "effective_from": record.effective_from,
        "effective_to": record.effective_to,
        "source": record.source.value,
        "precision": record.precision.value,
    }


def price_from_row(row: Row) -> StoredPrice:
    record = PricingRecord(
        model=row["model"],
        input_per_mtok=row["input_per_mtok"],
        output_per_mtok=row["output_per_mtok"],
        cached_input_per_mtok=row["cached_input_per_mtok"],
        per_request=row["per_request"],
        effective_from=row["effective_from"],
        effective_to=row["effective_to"],
        source=PriceSource(row["source"]),
        precision=Precision(row["precision"]),
    )
    return StoredPrice(id=row["id"], record=record, created_at=row["created_at"])
