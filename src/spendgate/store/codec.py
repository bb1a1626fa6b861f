"""Routing decisions ↔ ``routing_decisions`` rows. Pure functions: no I/O.

A decision's scalar facts become columns (filterable, indexed); the variable-length rest goes to
the compact ``detail`` JSON: short keys, absent values omitted, candidates stored as differences
from the decision's own estimate. Budget evaluations do not copy their policy: they name it by
the digest of its spec, and each policy version is stored once in ``policy_snapshots``
(rows stay small). Amounts in JSON are decimal strings (``str(Decimal)``: exact, possibly with an
exponent); floats (complexity) are JSON numbers, which orjson round-trips exactly.

Encoding runs on the writer thread for every request, under the same GIL as the event loop, so
it is written for speed: it produces the row as a tuple of driver-ready values (``DECISION_COLUMNS``
order) that ``db.insert_tuples`` sends without SQLAlchemy's per-value type processing. Decoding
(admin reads) goes through the typed table. ``decision_from_row`` inverts ``decision_values``
exactly (tests check dataclass equality).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import orjson

from spendgate.domain.amounts import atto_text, to_atto
from spendgate.domain.budgets import BudgetEvaluation, BudgetPolicy, BudgetStatus, counters_for
from spendgate.domain.complexity import ComplexityScore, ComplexityTerm
from spendgate.domain.models import Tier
from spendgate.domain.pricing import Precision, PriceSource, PricingEstimate, Usage
from spendgate.domain.routing import (
    Candidate,
    HealthState,
    RouteStep,
    RoutingAction,
    RoutingDecision,
    RoutingMode,
    TaskClass,
    UpstreamAttempt,
)
from spendgate.domain.scopes import RequestScopes
from spendgate.domain.windows import Window
from spendgate.store.money import to_text
from spendgate.store.policy_codec import PolicyDigests
from spendgate.store.records import StoredDecision

__all__ = [
    "DECISION_COLUMNS",
    "DETAIL_VERSION",
    "SETTLEMENT_COLUMNS",
    "DatetimeEncoder",
    "decision_from_row",
    "decision_policy_refs",
    "decision_values",
    "hour_start",
    "settlement_values",
]

DETAIL_VERSION = 1
Row = Mapping[Any, Any]  # also SQLAlchemy's RowMapping
DatetimeEncoder = Callable[[datetime], Any]  # aware instant → the driver's stored form

SETTLEMENT_COLUMNS: Final = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "actual_cost_usd",
    "requested_cost_usd",
    "latency_ms",
    "status",
    "usage_estimated",
    "settled_at",
)
# The order of ``decision_values``; tests check it names exactly the table's columns.
DECISION_COLUMNS: Final = (
    "id",
    "created_at",
    "mode",
    "project",
    "principal",
    "api_key",
    "agent",
    "session",
    "task_class",
    "requested_model",
    "default_model",
    "recommended_model",
    "actual_model",
    "provider",
    "routing_action",
    "would_action",
    "health",
    "complexity",
    "estimated_lower_usd",
    "estimated_upper_usd",
    "precision",
    "estimated_saving_usd",
    "reason_codes",
    "detail",
    *SETTLEMENT_COLUMNS,
)
_STATUS_AT: Final = SETTLEMENT_COLUMNS.index("status")
_NO_SETTLEMENT = (None,) * len(SETTLEMENT_COLUMNS)


def hour_start(at: datetime) -> datetime:
    """The UTC hour bucket of an instant (rollups are hourly in UTC; local days sum hours)."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else to_text(value)


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _unamount(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _instant(at: datetime) -> int | str:
    """Epoch seconds when whole (window bounds always are), ISO text otherwise."""
    if at.microsecond == 0:
        return int(at.timestamp())
    return at.astimezone(UTC).isoformat()


def _from_instant(value: int | str) -> datetime:
    if isinstance(value, int):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(value)


# --- encode (writer thread, every request) --------------------------------------------------
# Enum members go out as they are: they are ``StrEnum``s, i.e. ``str`` to orjson and the drivers,
# and skipping ``.value`` (a descriptor call each) is measurably cheaper at ~20 per decision.


def _estimate_json(estimate: PricingEstimate, model: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "il": estimate.input_tokens_lower,
        "iu": estimate.input_tokens_upper,
        "ou": estimate.output_tokens_upper,
        "pr": estimate.precision,
    }
    if estimate.model != model:
        data["m"] = estimate.model
    if estimate.lower_usd is not None:
        data["lo"] = str(estimate.lower_usd)
    if estimate.upper_usd is not None:
        data["up"] = str(estimate.upper_usd)
    if estimate.source is not None:
        data["src"] = estimate.source
    if estimate.unpriced:
        data["un"] = True
    return data


def _candidate_json(candidate: Candidate, base: PricingEstimate) -> dict[str, Any]:
    # Candidates mostly share the decision's token bounds, precision and source: keep only what
    # differs from the decision's estimate; null marks a value the base has and this one lacks.
    data: dict[str, Any] = {
        "m": candidate.model,
        "pv": candidate.provider,
        "ct": candidate.cost_tier,
        "lt": candidate.latency_tier,
        "h": candidate.health,
        "ok": candidate.eligible,
        "why": candidate.reason,
    }
    estimate = candidate.estimate
    if estimate is None:  # not priced when planned (hot path): no "e" key
        return data
    diff: dict[str, Any] = {}
    if estimate.model != candidate.model:
        diff["m"] = estimate.model
    if estimate.input_tokens_lower != base.input_tokens_lower:
        diff["il"] = estimate.input_tokens_lower
    if estimate.input_tokens_upper != base.input_tokens_upper:
        diff["iu"] = estimate.input_tokens_upper
    if estimate.output_tokens_upper != base.output_tokens_upper:
        diff["ou"] = estimate.output_tokens_upper
    if estimate.lower_usd != base.lower_usd:
        diff["lo"] = _amount(estimate.lower_usd)
    if estimate.upper_usd != base.upper_usd:
        diff["up"] = _amount(estimate.upper_usd)
    if estimate.precision is not base.precision:
        diff["pr"] = estimate.precision
    if estimate.source is not base.source:
        diff["src"] = estimate.source
    if estimate.unpriced != base.unpriced:
        diff["un"] = estimate.unpriced
    data["e"] = diff
    return data


def _window_json(window: Window) -> list[int | str]:
    """``[start, end]`` instants. The planner hands the same ``Window`` object to every
    decision while a window lasts, so each is converted once (memo keyed by identity, holding
    the window so its id is not reused while cached)."""
    known = _windows_memo.get(id(window))
    if known is not None and known[0] is window:
        return known[1]
    if len(_windows_memo) >= _WINDOWS_MEMO_LIMIT:
        _windows_memo.clear()
    instants = [_instant(window.start), _instant(window.end)]
    _windows_memo[id(window)] = (window, instants)
    return instants


_WINDOWS_MEMO_LIMIT = 4096
_windows_memo: dict[int, tuple[Window, list[int | str]]] = {}


def _evaluation_json(evaluation: BudgetEvaluation, digest: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "p": digest,
        "mb": evaluation.member,
        "w": _window_json(evaluation.window),
        "st": evaluation.status,
    }
    if evaluation.settled_atto:
        data["s"] = atto_text(evaluation.settled_atto)
    if evaluation.reserved_atto:
        data["r"] = atto_text(evaluation.reserved_atto)
    if evaluation.request_amount is not None:
        data["a"] = str(evaluation.request_amount)
    if evaluation.threshold is not None:
        data["th"] = str(evaluation.threshold)
    if evaluation.approval_id is not None:
        data["ap"] = evaluation.approval_id
    return data


def _detail(decision: RoutingDecision, digests: PolicyDigests) -> dict[str, Any]:
    estimate = decision.estimate
    detail: dict[str, Any] = {
        "v": DETAIL_VERSION,
        "expl": decision.explanation,
        "est": _estimate_json(estimate, decision.target_model),
        "cx": [(t.name, t.contribution, t.detail) for t in decision.complexity.terms],
    }
    if decision.refused:
        # No model was called (the columns are null): the one planned and priced is kept.
        detail["tg"] = [decision.target_model, decision.target_provider]
    if decision.budget_evaluations:
        detail["ev"] = [_evaluation_json(e, digests(e.policy)) for e in decision.budget_evaluations]
    if decision.candidates:
        detail["cand"] = [_candidate_json(c, estimate) for c in decision.candidates]
    if decision.route:
        # The route names the fallback models too (``fallbacks`` is read back from it).
        detail["rt"] = [[step.model, step.provider] for step in decision.route]
    elif decision.fallbacks:
        detail["fb"] = list(decision.fallbacks)
    if decision.attempts:
        detail["at"] = [_attempt_json(a) for a in decision.attempts]
    return detail


def _attempt_json(attempt: UpstreamAttempt) -> dict[str, Any]:
    data: dict[str, Any] = {"m": attempt.model, "pv": attempt.provider, "o": attempt.outcome}
    if attempt.may_have_billed:
        data["b"] = True
    if attempt.decision_id is not None:
        data["d"] = attempt.decision_id
    if attempt.usage is not None:
        usage = attempt.usage
        data["u"] = [usage.input_tokens, usage.output_tokens, usage.cached_input_tokens]
    if attempt.cost_usd is not None:
        data["c"] = str(attempt.cost_usd)
    return data


def settlement_values(
    usage: Usage,
    cost_usd: Decimal | None,
    requested_cost_usd: Decimal | None,
    latency_ms: float | None,
    status: str | None,
    usage_estimated: bool,
    settled_at: datetime,
) -> dict[str, Any]:
    """The columns a settlement fills in (typed values, for the typed UPDATE)."""
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "actual_cost_usd": cost_usd,
        "requested_cost_usd": requested_cost_usd,
        "latency_ms": latency_ms,
        "status": status,
        "usage_estimated": usage_estimated,
        "settled_at": settled_at,
    }


def decision_values(
    decision: RoutingDecision,
    digests: PolicyDigests,
    encode_datetime: DatetimeEncoder,
    *,
    usage_estimated: bool = False,
    now: datetime,
) -> tuple[Any, ...]:
    """The row of a decision as driver-ready values in ``DECISION_COLUMNS`` order.

    A decision that already carries ``usage`` is stored settled (at ``now``). The caller stores
    the ``policy_snapshots`` its evaluations refer to (``digests.snapshot``).
    """
    scopes = decision.scopes
    estimate = decision.estimate
    would = decision.would_action
    usage = decision.usage
    settlement = (
        # Unsettled: only the status (e.g. "refused") is known.
        (*_NO_SETTLEMENT[:_STATUS_AT], decision.status, *_NO_SETTLEMENT[_STATUS_AT + 1 :])
        if usage is None
        else (
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_input_tokens,
            _text(decision.actual_cost_usd),
            _text(decision.requested_cost_usd),
            decision.latency_ms,
            decision.status,
            usage_estimated,
            encode_datetime(now),
        )
    )
    return (
        decision.id,
        encode_datetime(decision.created_at),
        decision.mode,
        scopes.project,
        scopes.principal,
        scopes.api_key,
        scopes.agent,
        scopes.session,
        decision.task_class,
        decision.requested_model,
        decision.default_model,
        decision.recommended_model,
        decision.actual_model,
        decision.provider,
        decision.routing_action,
        would,
        decision.health,
        decision.complexity.score,
        _text(estimate.lower_usd),
        _text(estimate.upper_usd),
        estimate.precision,
        _text(decision.estimated_saving_usd),
        orjson.dumps(decision.reason_codes).decode(),
        orjson.dumps(_detail(decision, digests)).decode(),
        *settlement,
    )


# --- decode (admin reads) -------------------------------------------------------------------


def _estimate_from_json(data: Mapping[str, Any], model: str) -> PricingEstimate:
    source = data.get("src")
    return PricingEstimate(
        model=data.get("m", model),
        input_tokens_lower=data["il"],
        input_tokens_upper=data["iu"],
        output_tokens_upper=data["ou"],
        lower_usd=_unamount(data.get("lo")),
        upper_usd=_unamount(data.get("up")),
        precision=Precision(data["pr"]),
        source=PriceSource(source) if source is not None else None,
        unpriced=data.get("un", False),
    )


def _candidate_from_json(data: Mapping[str, Any], base: Mapping[str, Any]) -> Candidate:
    estimate: PricingEstimate | None = None
    if "e" in data:
        merged = {key: value for key, value in base.items() if key != "m"}
        merged.update(data["e"])
        present = {key: value for key, value in merged.items() if value is not None}
        estimate = _estimate_from_json(present, data["m"])
    return Candidate(
        model=data["m"],
        provider=data["pv"],
        cost_tier=Tier(data["ct"]),
        latency_tier=Tier(data["lt"]),
        health=HealthState(data["h"]),
        estimate=estimate,
        eligible=data["ok"],
        reason=data["why"],
    )


def _evaluation_from_json(
    data: Mapping[str, Any], policies: Mapping[str, BudgetPolicy], created_at: datetime
) -> BudgetEvaluation:
    start, end = data["w"]
    policy = policies[data["p"]]
    amount = _unamount(data.get("a"))
    return BudgetEvaluation(
        policy=policy,
        member=data["mb"],
        window=Window(_from_instant(start), _from_instant(end)),
        settled_atto=to_atto(Decimal(data.get("s", 0))),
        reserved_atto=to_atto(Decimal(data.get("r", 0))),
        request_amount=amount,
        status=BudgetStatus(data["st"]),
        threshold=_unamount(data.get("th")),
        approval_id=data.get("ap"),
        # Not stored: derived from the policy's interval and the request's time, as planned.
        keys=counters_for(policy, data["mb"], created_at)[0],
        amount_atto=None if amount is None else to_atto(amount),
    )


def _attempt_from_json(data: Mapping[str, Any]) -> UpstreamAttempt:
    usage = data.get("u")
    return UpstreamAttempt(
        model=data["m"],
        provider=data["pv"],
        outcome=data["o"],
        may_have_billed=data.get("b", False),
        decision_id=data.get("d"),
        usage=Usage(*usage) if usage is not None else None,
        cost_usd=_unamount(data.get("c")),
    )


def decision_policy_refs(rows: Iterable[Row]) -> set[str]:
    """The policy digests the rows' budget evaluations refer to."""
    return {e["p"] for row in rows for e in row["detail"].get("ev", ())}


def _fallbacks(detail: Mapping[str, Any], target_model: str) -> tuple[str, ...]:
    """The fallback models: those of the route (the target's other deployments aside), or,
    in a row written before routes were stored or without one, the list kept alone."""
    if "rt" in detail:
        return tuple(dict.fromkeys(model for model, _ in detail["rt"] if model != target_model))
    return tuple(detail.get("fb", ()))


def decision_from_row(row: Row, policies: Mapping[str, BudgetPolicy]) -> StoredDecision:
    """Rebuild a decision from a typed row; ``policies`` maps digests to snapshots."""
    detail: Mapping[str, Any] = row["detail"]
    if detail.get("v") != DETAIL_VERSION:
        raise ValueError(f"decision {row['id']}: unknown detail version {detail.get('v')!r}")
    target_model, target_provider = (
        detail["tg"] if "tg" in detail else (row["actual_model"], row["provider"])
    )
    tokens = _estimate_from_json(detail["est"], target_model)
    # Cost bounds and precision live in columns (filterable); the rest of it in detail.
    estimate = PricingEstimate(
        model=tokens.model,
        input_tokens_lower=tokens.input_tokens_lower,
        input_tokens_upper=tokens.input_tokens_upper,
        output_tokens_upper=tokens.output_tokens_upper,
        lower_usd=row["estimated_lower_usd"],
        upper_usd=row["estimated_upper_usd"],
        precision=Precision(row["precision"]),
        source=tokens.source,
        unpriced=tokens.unpriced,
    )
    usage = (
        Usage(row["input_tokens"], row["output_tokens"], row["cached_input_tokens"])
        if row["input_tokens"] is not None
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
        target_model=target_model,
        target_provider=target_provider,
        complexity=ComplexityScore(
            row["complexity"], tuple(ComplexityTerm(n, c, d) for n, c, d in detail["cx"])
        ),
        health=HealthState(row["health"]),
        routing_action=RoutingAction(row["routing_action"]),
        reason_codes=tuple(row["reason_codes"]),
        explanation=tuple(detail["expl"]),
        estimate=estimate,
        budget_evaluations=tuple(
            _evaluation_from_json(e, policies, row["created_at"]) for e in detail.get("ev", ())
        ),
        candidates=tuple(_candidate_from_json(c, detail["est"]) for c in detail.get("cand", ())),
        fallbacks=_fallbacks(detail, target_model),
        route=tuple(RouteStep(model, provider) for model, provider in detail.get("rt", ())),
        would_action=RoutingAction(would) if would is not None else None,
        estimated_saving_usd=row["estimated_saving_usd"],
        usage=usage,
        actual_cost_usd=row["actual_cost_usd"],
        requested_cost_usd=row["requested_cost_usd"],
        latency_ms=row["latency_ms"],
        status=row["status"],
        attempts=tuple(_attempt_from_json(a) for a in detail.get("at", ())),
    )
    return StoredDecision(decision, row["usage_estimated"], row["settled_at"])
