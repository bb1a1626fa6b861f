"""Journal items ↔ compact records: what the gateway sends its writer process.

The gateway's side of a journal write must cost next to nothing, so an item becomes a flat
tuple of the public attributes the journal stores, of the types ``marshal`` writes (``frames``):
strings, numbers, ``None``, tuples and lists. Enum members go as their values, ``Decimal``s as
their exact text (``str``: ~60 ns, where pickling a ``Decimal`` costs ~1 µs), counter sums as
the integer attos they are held in (their text is the writer process's work) and instants as
POSIX timestamps (a float holds every microsecond exactly until the year 2242; pickling a
``datetime`` costs ~0.8 µs). Pickling the dataclasses themselves would run Python code per
object: measured ~420 µs for one decision with 20 budget evaluations. Objects that recur from
request to request are sent once and then named by a number: budget policies (pickled whole) and the
windows of their counters (the planner hands the same ``Window`` object to every decision
while a window lasts). A decision's encoding is turned back into an equal
``RoutingDecision`` on the writer's side (``Decoder``), where ``batch``/``codec`` encode it
for the database as they always did; so what the journal stores does not depend on the
transport. Evaluations travel without their ``keys`` (the counters they read): the journal
never stores those.

Records are tuples whose first element says what they are (``APPEND``, ``SETTLE``,
``COUNTERS``, ``DEFINE``, ``FORGET``).

The encoder reads these public attributes: ``RoutingDecision``: every field (``id``,
``created_at``, ``mode``, ``scopes`` (its five ids), ``task_class``, the four model names,
``target_provider``, ``complexity`` (``score``, ``terms``), ``health``, ``routing_action``,
``reason_codes``, ``explanation``, ``estimate``, ``budget_evaluations``, ``candidates``,
``would_action``, ``estimated_saving_usd``, ``fallbacks``, ``route``, ``usage``,
``actual_cost_usd``, ``requested_cost_usd``, ``latency_ms``, ``status``, ``attempts``);
``BudgetEvaluation``: ``policy``, ``member``, ``window`` (``start``, ``end``), ``settled``,
``reserved``, ``request_amount``, ``status``, ``threshold``, ``approval_id``; every field of
``PricingEstimate``, ``Candidate``, ``UpstreamAttempt``, ``Usage``; a settlement's and counter
increments' amounts.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, MutableSequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from spendgate.domain.amounts import to_atto
from spendgate.domain.budgets import BudgetEvaluation, BudgetPolicy, BudgetStatus, CounterKey
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
from spendgate.store.batch import AppendDecision, CounterIncrements, Item, SettleDecision

__all__ = ["APPEND", "COUNTERS", "DEFINE", "FORGET", "SETTLE", "Decoder", "Encoder", "Record"]

APPEND: Final = 0
SETTLE: Final = 1
COUNTERS: Final = 2
DEFINE: Final = 3  # (DEFINE, number, pickled policy | (window start, end))
FORGET: Final = 4  # the writer drops every definition it holds

Record = tuple[Any, ...]

# Definitions held by an encoder before it starts afresh: policies and windows are few and
# long-lived, but a gateway that runs for months sees new windows every hour.
_MAX_DEFINITIONS = 4096


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def _amount(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _instant(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _usage(usage: Usage | None) -> tuple[int, int, int] | None:
    if usage is None:
        return None
    return (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens)


def _estimate(estimate: PricingEstimate | None) -> Record | None:
    if estimate is None:
        return None
    source = estimate.source
    return (
        estimate.model,
        estimate.input_tokens_lower,
        estimate.input_tokens_upper,
        estimate.output_tokens_upper,
        _text(estimate.lower_usd),
        _text(estimate.upper_usd),
        estimate.precision._value_,
        None if source is None else source._value_,
        estimate.unpriced,
    )


class Encoder:
    """Encodes items on the gateway's side. Not thread-safe: the caller serialises calls (and
    the order of the records they append). ``definitions()`` are the records a new writer
    process must receive before the records encoded since the last ``FORGET``."""

    __slots__ = ("_known", "_next")

    def __init__(self) -> None:
        # id(object) → (object, number, its DEFINE record); the object is held so its id is
        # not reused while it is known.
        self._known: dict[int, tuple[object, int, Record]] = {}
        self._next = 0

    def definitions(self) -> list[Record]:
        return [record for _, _, record in self._known.values()]

    def encode(self, item: Item, out: MutableSequence[Record]) -> None:
        """Append ``item``'s record to ``out``, preceded by the definitions it needs (a
        ``FORGET`` first when the table is full: between records, never inside one, whose
        numbers must all stay defined until it is decoded)."""
        if len(self._known) >= _MAX_DEFINITIONS:
            self._known.clear()
            out.append((FORGET,))
        if isinstance(item, AppendDecision):
            out.append(self._decision(item.decision, item.usage_estimated, out))
        elif isinstance(item, SettleDecision):
            out.append(
                (
                    SETTLE,
                    item.decision_id,
                    _usage(item.usage),
                    _text(item.cost_usd),
                    _text(item.requested_cost_usd),
                    item.latency_ms,
                    item.status,
                    item.usage_estimated,
                    item.settled_at.timestamp(),
                )
            )
        else:
            out.append(counters_record(item.increments))

    def _number(self, thing: object, define: Any, out: MutableSequence[Record]) -> int:
        known = self._known.get(id(thing))
        if known is not None:
            return known[1]
        number = self._next
        self._next += 1
        record = (DEFINE, number, define)
        out.append(record)
        self._known[id(thing)] = (thing, number, record)
        return number

    def _evaluation(self, evaluation: BudgetEvaluation, out: MutableSequence[Record]) -> Record:
        policy = evaluation.policy
        window = evaluation.window
        known = self._known.get(id(policy))
        policy_number = (
            known[1]
            if known is not None
            else self._number(policy, pickle.dumps(policy, pickle.HIGHEST_PROTOCOL), out)
        )
        known = self._known.get(id(window))
        window_number = (
            known[1]
            if known is not None
            else self._number(window, (window.start.timestamp(), window.end.timestamp()), out)
        )
        return (
            policy_number,
            evaluation.member,
            window_number,
            evaluation.settled_atto,  # integers: turned into text by the writer process
            evaluation.reserved_atto,
            _text(evaluation.request_amount),
            evaluation.status._value_,
            _text(evaluation.threshold),
            evaluation.approval_id,
        )

    def _decision(
        self, decision: RoutingDecision, usage_estimated: bool, out: MutableSequence[Record]
    ) -> Record:
        scopes = decision.scopes
        would = decision.would_action
        evaluations = []
        known = self._known
        for evaluation in decision.budget_evaluations:
            policy = known.get(id(evaluation.policy))
            window = known.get(id(evaluation.window))
            if policy is None or window is None:
                evaluations.append(self._evaluation(evaluation, out))
                continue
            # Inlined: ~20 per decision, the bulk of the gateway's encoding.
            amount = evaluation.request_amount
            threshold = evaluation.threshold
            evaluations.append(
                (
                    policy[1],
                    evaluation.member,
                    window[1],
                    evaluation.settled_atto,
                    evaluation.reserved_atto,
                    None if amount is None else str(amount),
                    evaluation.status._value_,
                    None if threshold is None else str(threshold),
                    evaluation.approval_id,
                )
            )
        return (
            APPEND,
            decision.id,
            decision.created_at.timestamp(),
            decision.mode._value_,
            (scopes.project, scopes.principal, scopes.api_key, scopes.agent, scopes.session),
            decision.task_class._value_,
            decision.requested_model,
            decision.default_model,
            decision.recommended_model,
            decision.target_model,
            decision.target_provider,
            decision.complexity.score,
            [(t.name, t.contribution, t.detail) for t in decision.complexity.terms],
            decision.health._value_,
            decision.routing_action._value_,
            decision.reason_codes,
            decision.explanation,
            _estimate(decision.estimate),
            evaluations,
            [
                (
                    c.model,
                    c.provider,
                    c.cost_tier._value_,
                    c.latency_tier._value_,
                    c.health._value_,
                    _estimate(c.estimate),
                    c.eligible,
                    c.reason,
                )
                for c in decision.candidates
            ],
            None if would is None else would._value_,
            _text(decision.estimated_saving_usd),
            decision.fallbacks,
            [(step.model, step.provider) for step in decision.route],
            _usage(decision.usage),
            _text(decision.actual_cost_usd),
            _text(decision.requested_cost_usd),
            decision.latency_ms,
            decision.status,
            [_attempt(a) for a in decision.attempts],
            usage_estimated,
        )


def _attempt(attempt: UpstreamAttempt) -> Record:
    return (
        attempt.model,
        attempt.provider,
        attempt.outcome,
        attempt.may_have_billed,
        attempt.decision_id,
        _usage(attempt.usage),
        _text(attempt.cost_usd),
    )


def counters_record(increments: Mapping[CounterKey, Decimal]) -> Record:
    # CounterKey is a NamedTuple: pickling one runs Python code, a plain tuple does not.
    return (COUNTERS, [(*key, str(amount)) for key, amount in increments.items()])


def _unusage(value: tuple[int, int, int] | None) -> Usage | None:
    return None if value is None else Usage(*value)


def _unestimate(value: Record | None) -> PricingEstimate | None:
    if value is None:
        return None
    model, lower_tokens, upper_tokens, output, lower, upper, precision, source, unpriced = value
    return PricingEstimate(
        model=model,
        input_tokens_lower=lower_tokens,
        input_tokens_upper=upper_tokens,
        output_tokens_upper=output,
        lower_usd=_amount(lower),
        upper_usd=_amount(upper),
        precision=Precision(precision),
        source=None if source is None else PriceSource(source),
        unpriced=unpriced,
    )


class Decoder:
    """Turns records back into journal items, on the writer's side (one per connection)."""

    __slots__ = ("_defined",)

    def __init__(self) -> None:
        self._defined: dict[int, Any] = {}

    def decode(self, record: Record) -> Item | None:
        """The item of ``record``, or None for a definition (held for the records after it)."""
        kind = record[0]
        if kind == APPEND:
            return self._decision(record)
        if kind == SETTLE:
            _, decision_id, usage, cost, requested, latency, status, estimated, at = record
            usage_value = _unusage(usage)
            assert usage_value is not None
            return SettleDecision(
                decision_id,
                usage_value,
                _amount(cost),
                _amount(requested),
                latency,
                status,
                estimated,
                _instant(at),
            )
        if kind == COUNTERS:
            return CounterIncrements(
                {
                    CounterKey(policy, member, window): Decimal(amount)
                    for policy, member, window, amount in record[1]
                }
            )
        if kind == DEFINE:
            _, number, value = record
            self._defined[number] = (
                pickle.loads(value)
                if isinstance(value, bytes)
                else Window(_instant(value[0]), _instant(value[1]))
            )
            return None
        if kind == FORGET:
            self._defined.clear()
            return None
        raise ValueError(f"unknown journal record kind {kind!r}")

    def _evaluation(self, value: Record) -> BudgetEvaluation:
        policy, member, window, settled, reserved, amount, status, threshold, approval = value
        found: BudgetPolicy = self._defined[policy]
        request_amount = _amount(amount)
        return BudgetEvaluation(
            policy=found,
            member=member,
            window=self._defined[window],
            settled_atto=settled,
            reserved_atto=reserved,
            request_amount=request_amount,
            status=BudgetStatus(status),
            threshold=_amount(threshold),
            approval_id=approval,
            amount_atto=None if request_amount is None else to_atto(request_amount),
        )

    def _decision(self, record: Record) -> AppendDecision:
        (
            _, decision_id, created_at, mode, scopes, task_class, requested, default,
            recommended, target, target_provider, score, terms, health, action, reasons,
            explanation, estimate, evaluations, candidates, would, saving, fallbacks, route,
            usage, actual_cost, requested_cost, latency, status, attempts, usage_estimated,
        ) = record  # fmt: skip
        decoded_estimate = _unestimate(estimate)
        assert decoded_estimate is not None
        decision = RoutingDecision(
            id=decision_id,
            created_at=_instant(created_at),
            mode=RoutingMode(mode),
            scopes=RequestScopes(*scopes),
            task_class=TaskClass(task_class),
            requested_model=requested,
            default_model=default,
            recommended_model=recommended,
            target_model=target,
            target_provider=target_provider,
            complexity=ComplexityScore(score, tuple(ComplexityTerm(*term) for term in terms)),
            health=HealthState(health),
            routing_action=RoutingAction(action),
            reason_codes=reasons,
            explanation=explanation,
            estimate=decoded_estimate,
            budget_evaluations=tuple(self._evaluation(e) for e in evaluations),
            candidates=tuple(
                Candidate(
                    model,
                    provider,
                    Tier(cost),
                    Tier(latency_tier),
                    HealthState(state),
                    _unestimate(priced),
                    eligible,
                    reason,
                )
                for (model, provider, cost, latency_tier, state, priced, eligible, reason) in (
                    candidates
                )
            ),
            would_action=None if would is None else RoutingAction(would),
            estimated_saving_usd=_amount(saving),
            fallbacks=fallbacks,
            route=tuple(RouteStep(model, provider) for model, provider in route),
            usage=_unusage(usage),
            actual_cost_usd=_amount(actual_cost),
            requested_cost_usd=_amount(requested_cost),
            latency_ms=latency,
            status=status,
            attempts=tuple(
                UpstreamAttempt(
                    model, provider, outcome, billed, under, _unusage(used), _amount(cost)
                )
                for model, provider, outcome, billed, under, used, cost in attempts
            ),
        )
        return AppendDecision(decision, usage_estimated)
