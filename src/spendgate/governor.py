"""The Governor: the application service that ties plan → reserve → (call) → settle.

It is the public library API: a Python orchestrator can govern its own model calls
in-process, without the HTTP gateway::

    governor = Governor.from_config(load_config(None))
    decision = governor.plan(body, RequestScopes(project="acme", principal="alice"))
    if governor.reserve(decision).ok:
        ...call decision.actual_model...
        governor.settle(decision, Usage(input_tokens=812, output_tokens=120))

Everything planning reads (config, prices, policies, counters) is in memory; the only clock
read is ``now`` defaulting to the current time when the caller passes none.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from spendgate.domain.amounts import decimal_amounts
from spendgate.domain.budgets import CounterKey, OverrideGrant, live_windows, most_severe
from spendgate.domain.estimates import actual_cost
from spendgate.domain.planner import GovernanceState, ModelNotFoundError, PlanCall, plan
from spendgate.domain.pricing import PricingEstimate, Usage
from spendgate.domain.rate_limits import (
    RateLine,
    RateMetric,
    RateRefund,
    RateVerdict,
    oversized,
    rate_lines,
)
from spendgate.domain.requests import ChatRequest
from spendgate.domain.reservations import ReservationLine, reservation_lines, settlement
from spendgate.domain.routing import REFUSED, HealthState, RoutingDecision, RoutingMode, TaskClass
from spendgate.domain.scopes import RequestScopes
from spendgate.domain.windows import counter_buckets
from spendgate.grants import GrantBook
from spendgate.ledger.base import (
    DEFAULT_RESERVATION_TTL,
    AsyncReserving,
    Ledger,
    ReserveOutcome,
)
from spendgate.ledger.memory import MemoryLedger

if TYPE_CHECKING:
    from spendgate.config import Config
    from spendgate.store.journal import Journal

__all__ = ["CallRecorder", "Governor", "SettleObserver"]


class SettleObserver(Protocol):
    """Watches outcomes on the request path: both calls must only record and return."""

    def settled(self, decision: RoutingDecision, cost: Decimal | None, unpriced: bool) -> None:
        """``cost``: the actual cost (None: unpriced and not estimated)."""

    def refused(self, decision: RoutingDecision, policy_id: str | None) -> None:
        """A budget refused the request (``policy_id``: which, when the ledger said so)."""


class CallRecorder(Protocol):
    """Told of each request as it is planned and of each decision as it ends (the trace
    exporter): both calls must only record and return."""

    def planned(self, request: ChatRequest) -> None:
        """A request was planned (again, for each failover candidate)."""

    def ended(self, decision: RoutingDecision) -> None:
        """A decision ended as journaled: settled (usage, cost, status filled), refused or
        abandoned (status filled)."""


class Governor:
    """Plans, reserves and settles requests. With a ``journal``, its ledger starts from the
    journal's settled counters of the windows still live, a policy whose counting identity
    changed since its counters were written starts on fresh ones (``CountingRegistry``), and
    every finished or refused
    decision is journaled (off the hot path: the journal only enqueues)."""

    def __init__(
        self,
        state: GovernanceState,
        ledger: Ledger | None = None,
        journal: Journal | None = None,
    ) -> None:
        if journal is not None:
            policies, _changes = journal.counting.resolve(state.policies)
            state = replace(state, policies=policies)
        self.state = state
        self.journal = journal
        self.ledger: Ledger = (
            ledger if ledger is not None else MemoryLedger(self.journaled_counters())
        )
        # Checked once: an isinstance against a Protocol inspects its members (~10 µs).
        self._shared: AsyncReserving | None = (
            self.ledger if isinstance(self.ledger, AsyncReserving) else None
        )
        # Approved budget overrides in force (the journal's, at start; kept current by the
        # approvals service as they are decided, consumed or expire).
        self.grants = GrantBook(
            filter(None, (a.grant() for a in journal.approvals.active_grants()))
            if journal is not None
            else ()
        )
        # Told of every settled and refused request (the alert detector; it only queues).
        self.observer: SettleObserver | None = None
        # Told of every plan and ended decision (the trace exporter, when tracing is on).
        self.recorder: CallRecorder | None = None
        # How long a reservation outlives its last keep-alive (``keep_alive``).
        self.reservation_ttl = DEFAULT_RESERVATION_TTL
        self._health: dict[str, HealthState] = {}
        # Decision ids: a random per-process prefix and a counter. A uuid4 per request costs
        # a syscall; next() on itertools.count is atomic, so threads get distinct ids.
        self._id_prefix = os.urandom(6).hex()
        self._id_counter = itertools.count(1)
        # Per reservation, the rate limits' token lines it took from: what was not used goes
        # back when it settles, all of it when it is released or abandoned.
        self._token_holds: dict[str, tuple[RateLine, ...]] = {}

    @classmethod
    def from_config(
        cls, config: Config, ledger: Ledger | None = None, journal: Journal | None = None
    ) -> Governor:
        from spendgate.catalog import load_catalog

        prices = config.price_book(load_catalog())
        models = config.models(prices)
        state = GovernanceState(
            settings=config.routing_settings(),
            models={model.id: model for model in models},
            prices=prices,
            policies=config.budget_policies(),
            rate_limits=config.rate_limit_list(),
            unpriced_action=config.unpriced_action,
        )
        return cls(state, ledger, journal)

    def journaled_counters(self) -> dict[CounterKey, Decimal]:
        """The journal's settled amount of every counter still read (what a ledger starts
        from); empty without a journal."""
        if self.journal is None:
            return {}
        settled = self.journal.load_counters(self._live_windows(self.journal))
        return {key: counter.settled for key, counter in settled.items()}

    def journal_snapshot(self, since: datetime) -> tuple[dict[CounterKey, Decimal], list[str]]:
        """The journal's settled amount of every counter still read and the ids of the
        decisions it settled since ``since``, from one snapshot (what a shared ledger that
        lost its counters is seeded from); empty without a journal."""
        if self.journal is None:
            return {}, []
        # This process's settlements so far must be in it: those the seed misses would count
        # nowhere (a writer process commits a batch window behind, later at its start).
        self.journal.flush(5)
        counters, recent = self.journal.settled_snapshot(self._live_windows(self.journal), since)
        return {key: counter.settled for key, counter in counters.items()}, recent

    def current_windows(self, now: datetime | None = None) -> dict[str, list[str]]:
        """Per counter id, the window bucket keys a request now reads (a shared ledger
        discovers every member of them)."""
        at = now or datetime.now(UTC)
        return {
            policy.counter_id: [bucket.key for bucket in counter_buckets(policy.interval, at)]
            for policy in self.state.policies
        }

    def _live_windows(self, journal: Journal) -> dict[str, str]:
        """The windows still read of every policy: the configured ones and those stored in the
        journal (created at runtime, applied to ``state`` after start-up; each carries the
        generation its counters are recorded under)."""
        policies = (*self.state.policies, *journal.policies.list_policies())
        return live_windows(policies, datetime.now(UTC))

    # -- state the gateway keeps current -------------------------------------------------

    def set_health(self, provider: str, health: HealthState) -> None:
        self._health[provider] = health

    # -- the request lifecycle -------------------------------------------------------------

    def plan(
        self,
        request: ChatRequest | Mapping[str, Any],
        scopes: RequestScopes | None = None,
        now: datetime | None = None,
        *,
        task_class: TaskClass = TaskClass.PRIMARY_INTERACTIVE,
        requested_mode: RoutingMode | None = None,
        may_relax_mode: bool = False,
        allowed_models: frozenset[str] | None = None,
        decision_id: str | None = None,
        grants: Mapping[str, OverrideGrant] | None = None,
        explain: bool = False,
        health: Mapping[str, HealthState] | None = None,
        provider: str | None = None,
        draw: float | None = None,
    ) -> RoutingDecision:
        """Decide how to serve ``request`` (a ChatRequest or an OpenAI chat body).

        Raises ``ModelNotFoundError`` / ``ModelNotAllowedError`` and, for a malformed body,
        ``RequestError``. ``grants`` are the approved budget overrides that cover this
        request, by policy id. ``explain`` prices every candidate model, not only those
        planning needs. ``health`` (provider → state) replaces what ``set_health`` recorded,
        for callers that track health themselves (the gateway). ``provider`` plans on that
        deployment of the model only (a failover step); ``draw`` (uniform in [0, 1), default
        random) picks a model's deployment by weight.
        """
        chat = request if isinstance(request, ChatRequest) else ChatRequest.from_openai(request)
        if self.recorder is not None:
            self.recorder.planned(chat)
        call = PlanCall(
            request=chat,
            scopes=scopes or RequestScopes(),
            task_class=task_class,
            requested_mode=requested_mode,
            may_relax_mode=may_relax_mode,
            allowed_models=allowed_models,
            explain=explain,
            draw=random.random() if draw is None else draw,
            provider=provider,
        )
        ledger = self.ledger
        return plan(
            self.state,
            call,
            now=now or datetime.now(UTC),
            decision_id=decision_id or f"{self._id_prefix}{next(self._id_counter):08x}",
            counters=ledger.read_total,
            health=self._health if health is None else health,
            grants=grants or {},
            # Read before any counter: see ``MemoryLedger.version``.
            counters_read_at=ledger.version if isinstance(ledger, MemoryLedger) else None,
        )

    def reserve(
        self,
        decision: RoutingDecision,
        now: datetime | None = None,
        grants: Mapping[str, OverrideGrant] | None = None,
    ) -> ReserveOutcome:
        """Atomically reserve the decision's upper bound on every applicable counter.

        Refused (``ok`` false) when the decision itself blocks, or when a hard limit would be
        crossed now (usage may have moved since planning). For a ledger in this process; a
        shared one answers over the network: ``reserve_async``."""
        asked = self._lines(decision, grants)
        if isinstance(asked, ReserveOutcome):
            return self._reserved(decision, asked)
        lines, rates = asked
        outcome = self._reserve_here(decision, lines, now or decision.created_at, rates)
        return self._reserved(decision, outcome, rates)

    def _reserve_here(
        self,
        decision: RoutingDecision,
        lines: Sequence[ReservationLine],
        when: datetime,
        rates: Sequence[RateLine],
    ) -> ReserveOutcome:
        """Reserve on a ledger in this process; an in-memory one reuses the counters planning
        read when none changed since (``MemoryLedger.version``)."""
        ledger = self.ledger
        ttl = self.reservation_ttl
        if isinstance(ledger, MemoryLedger):
            return ledger.reserve(
                decision.id, lines, when, ttl, rates, read_at=decision.counters_read_at
            )
        return ledger.reserve(decision.id, lines, when, ttl, rates)

    async def recheck(
        self, decision: RoutingDecision, plan_again: Callable[[], RoutingDecision]
    ) -> RoutingDecision:
        """``decision``, unless a budget refused it on counters read from a shared ledger's
        local view, which may be a second behind (holds freed elsewhere since): a refusal
        must not stand on it, so those counters are read now and ``plan_again`` decides."""
        ledger = self._shared
        if not decision.blocked or ledger is None:
            return decision
        await ledger.refresh({key for e in decision.budget_evaluations for key in e.keys})
        return plan_again()

    async def reserve_async(
        self,
        decision: RoutingDecision,
        now: datetime | None = None,
        grants: Mapping[str, OverrideGrant] | None = None,
        *,
        takes_over: str | None = None,
    ) -> ReserveOutcome:
        """``reserve``, awaiting a shared ledger's answer (the event loop serves other
        requests meanwhile); with a ledger in this process it never suspends, so it stays
        atomic under asyncio. ``takes_over``: the decision of the same request (a failover)
        whose rate-limit hold this one carries on, admitted, instead of being rate-limited
        again: a client's request is admitted by the rate limits once, and the tokens it uses
        settle against that hold whichever decision serves it."""
        asked = self._lines(decision, grants, rated=takes_over is None)
        rates: Sequence[RateLine] = ()
        if isinstance(asked, ReserveOutcome):
            outcome = asked
        else:
            lines, rates = asked
            when = now or decision.created_at
            shared = self._shared
            if shared is not None:
                outcome = await shared.reserve_async(
                    decision.id, lines, when, self.reservation_ttl, rates
                )
            else:
                outcome = self._reserve_here(decision, lines, when, rates)
        if outcome.ok and takes_over in self._token_holds:
            self._token_holds[decision.id] = self._token_holds.pop(takes_over)
        return self._reserved(decision, outcome, rates)

    def _lines(
        self,
        decision: RoutingDecision,
        grants: Mapping[str, OverrideGrant] | None,
        *,
        rated: bool = True,
    ) -> tuple[Sequence[ReservationLine], Sequence[RateLine]] | ReserveOutcome:
        """What to reserve and which rate limits to take from (in every mode: a rate limit
        protects the platform, it is not advice), or the outcome when there is nothing to ask
        the ledger."""
        if decision.blocked:
            worst = most_severe(decision.budget_evaluations)
            return ReserveOutcome(False, worst.policy_id if worst else None)
        lines = reservation_lines(decision, grants)
        rates = self._rate_lines(decision) if rated else ()
        if rates:
            never = oversized(rates)
            if never is not None:
                return ReserveOutcome(False, never.limit_id, rate=RateVerdict((), never))
        return (lines, rates) if lines or rates else ReserveOutcome(True)

    def _rate_lines(self, decision: RoutingDecision) -> tuple[RateLine, ...]:
        limits = self.state.rate_limits
        if not limits:
            return ()
        estimate = decision.estimate
        tokens = estimate.input_tokens_upper + estimate.output_tokens_upper
        return rate_lines(limits, decision.scopes, decision.target_model, tokens)

    def _reserved(
        self,
        decision: RoutingDecision,
        outcome: ReserveOutcome,
        rates: Sequence[RateLine] = (),
    ) -> ReserveOutcome:
        if outcome.ok:
            if rates and outcome.rate is not None:  # taken (not admitted unchecked)
                tokens = tuple(line for line in rates if line.metric is RateMetric.TOKENS)
                if tokens:
                    self._token_holds[decision.id] = tokens
            return outcome
        refused = replace(decision, status=REFUSED)
        if outcome.rate is not None:
            # A rate-limited request is neither journaled nor an alert's business: under a
            # flood, writing each 429 would load the journal the limit protects (/metrics
            # counts them). A trace, sampled and batched, still shows it.
            if self.recorder is not None:
                self.recorder.ended(refused)
            return outcome
        if self.journal is not None or self.recorder is not None:
            self._ended(refused)
        if self.observer is not None:
            self.observer.refused(decision, outcome.refused_policy)
        return outcome

    def keep_alive(self, decision_ids: Collection[str], now: datetime | None = None) -> int:
        """Extend the reservations of requests still running to one TTL from ``now``: a call
        may last longer than the TTL (a long stream) and must keep its hold, while a request
        nobody keeps alive any more (its handler crashed) expires one TTL later. Call it for
        every running request well within each TTL (the gateway does, every few seconds)."""
        return self.ledger.extend(decision_ids, (now or datetime.now(UTC)) + self.reservation_ttl)

    def cost(self, decision: RoutingDecision, usage: Usage) -> PricingEstimate:
        """What ``usage`` on the decision's actual model costs, at the request's time."""
        model = self.state.models.get(decision.target_model)
        if model is None:
            raise ModelNotFoundError(decision.target_model)
        return actual_cost(
            model, usage, self.state.prices, decision.created_at, self.state.unpriced_action
        )

    def _requested_cost(self, decision: RoutingDecision, usage: Usage) -> Decimal | None:
        """What ``usage`` would have cost on the model the client asked for, when another
        one served it: the counterfactual of "saved by routing" (None when not rerouted, or
        when the requested model is not one of ours)."""
        requested = self.state.models.get(decision.requested_model)
        if requested is None or decision.target_model == requested.id:
            return None
        return actual_cost(
            requested, usage, self.state.prices, decision.created_at, self.state.unpriced_action
        ).upper_usd

    def release(self, decision_id: str) -> None:
        """Release a reservation whose call was not made (its rate-limit tokens go back; the
        request it counted stays counted)."""
        self.ledger.release(decision_id)
        self._give_back(decision_id, 0)

    def _give_back(self, decision_id: str, used_tokens: int) -> None:
        lines = self._token_holds.pop(decision_id, None)
        if lines is None:
            return
        refunds = [
            RateRefund(line.bucket, line.per_minute, line.amount - used_tokens)
            for line in lines
            if line.amount > used_tokens
        ]
        if refunds:
            self.ledger.refund(refunds, datetime.now(UTC))

    def abandon(self, decision: RoutingDecision, status: str) -> None:
        """The call never happened (e.g. every upstream failed before answering): release the
        reservation and journal the decision with ``status``."""
        self.release(decision.id)
        if self.journal is not None or self.recorder is not None:
            self._ended(replace(decision, status=status))

    def _ended(self, decision: RoutingDecision, usage_estimated: bool = False) -> None:
        if self.journal is not None:
            self.journal.append_decision(decision, usage_estimated=usage_estimated)
        if self.recorder is not None:
            self.recorder.ended(decision)

    def settle(
        self,
        decision: RoutingDecision,
        usage: Usage,
        *,
        latency_ms: float | None = None,
        status: str = "ok",
        usage_estimated: bool = False,
    ) -> Decimal | None:
        """Replace the reservation by the actual usage; returns the actual cost (None if
        the model is unpriced and not estimated). ``usage_estimated`` marks usage counted
        from streamed text because the provider reported none."""
        priced = self.cost(decision, usage)
        cost = priced.upper_usd
        increments = settlement(decision, usage, cost)
        self.ledger.settle(decision.id, increments)
        if self._token_holds:
            self._give_back(decision.id, usage.total_tokens)
        if self.journal is not None:
            # The counters before the decision: were a writer batch to end between the two,
            # the journal would hold the amounts without the settled decision, never the
            # decision without its amounts (what a seed of the shared ledger relies on: it
            # marks the settled decisions as counted). Exactly the attos the ledger counted.
            self.journal.add_to_counters(decimal_amounts(increments))
        if self.journal is not None or self.recorder is not None:
            finished = replace(
                decision,
                usage=usage,
                actual_cost_usd=cost,
                requested_cost_usd=self._requested_cost(decision, usage),
                latency_ms=latency_ms,
                status=status,
            )
            self._ended(finished, usage_estimated)
        if self.observer is not None:
            self.observer.settled(decision, cost, priced.unpriced)
        return cost
