"""Planning: from a request and the governance state to one explained RoutingDecision.

Pure: the caller passes the time, the decision id, a counter reader (the ledger), provider
health and approved overrides. Steps: estimate → complexity → candidates → mode → choose a
model by complexity band and task class → health (failover) → budgets (degrade / block /
approval) → apply the mode (suggest and dry_run keep the requested model, enforced applies).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from spendgate.domain.budgets import (
    BudgetEvaluation,
    BudgetPolicy,
    BudgetStatus,
    CounterKey,
    CounterState,
    Metric,
    OverrideGrant,
    PolicyIndex,
    UnpricedAction,
    counters_for,
    evaluate_policy,
    most_severe,
    request_amounts,
)
from spendgate.domain.complexity import ComplexityScore, score_complexity
from spendgate.domain.deployments import deployment_order, healthy_deployments
from spendgate.domain.estimates import effective_record, estimate_cost, output_ceiling
from spendgate.domain.models import Capability, Deployment, Model
from spendgate.domain.modes import ModeResolution, resolve_mode
from spendgate.domain.pricing import PriceBook, PricingEstimate
from spendgate.domain.rate_limits import RateLimit
from spendgate.domain.requests import ChatRequest, Protocol
from spendgate.domain.routing import (
    Candidate,
    HealthState,
    RouteStep,
    RoutingAction,
    RoutingDecision,
    RoutingMode,
    RoutingSettings,
    TaskClass,
)
from spendgate.domain.scopes import RequestScopes
from spendgate.domain.tokens import TokenEstimate, estimate_input_tokens

__all__ = [
    "AUTO_MODEL",
    "EMBEDDINGS_BLOCKED",
    "EMBEDDINGS_NOT_DEGRADED",
    "CounterReader",
    "GovernanceState",
    "ModelNotAllowedError",
    "ModelNotFoundError",
    "ModelUnsuitedError",
    "PlanCall",
    "plan",
    "required_capabilities",
]

# A request for this model id lets spendgate pick, starting from the configured default.
AUTO_MODEL = "auto"

# Reads settled + reserved summed over one policy's window buckets (the ledger's read_total).
CounterReader = Callable[[tuple[CounterKey, ...]], CounterState]

_LOW_COST_TASKS = frozenset(
    {
        TaskClass.AUXILIARY_SUMMARY,
        TaskClass.AUXILIARY_RECALL,
        TaskClass.AUXILIARY_EXTRACTION,
        TaskClass.BACKGROUND_AUTOMATION,
        TaskClass.AUXILIARY_VISION,
    }
)
_NO_GRANTS: Mapping[str, OverrideGrant] = {}
_REQUEST_KINDS = {
    Protocol.OPENAI: "chat completions",
    Protocol.ANTHROPIC: "messages",
    Protocol.COMPLETIONS: "legacy completions",
}
# A budget would degrade an embeddings request, which keeps its model.
EMBEDDINGS_NOT_DEGRADED = "embeddings_not_degraded"
EMBEDDINGS_BLOCKED = (
    "An embeddings request keeps its model (vectors of different models are not comparable), "
    "so it is blocked instead of being degraded."
)
_UNKNOWN_PRICE = Decimal("Infinity")
_NO_HEALTH: Mapping[str, HealthState] = {}


class ModelNotFoundError(LookupError):
    def __init__(self, model: str) -> None:
        super().__init__(f"The model {model!r} does not exist or is not configured.")
        self.model = model


class ModelNotAllowedError(PermissionError):
    def __init__(self, model: str) -> None:
        super().__init__(f"This API key may not use the model {model!r}.")
        self.model = model


class ModelUnsuitedError(ValueError):
    """The model asked for cannot serve this kind of request: an embeddings request for a
    chat model, or a chat request for an embeddings model."""

    def __init__(self, model: str, message: str) -> None:
        super().__init__(message)
        self.model = model


@dataclass(frozen=True, slots=True)
class GovernanceState:
    """What planning reads that changes only with config: held in memory, never re-read."""

    settings: RoutingSettings
    models: Mapping[str, Model]
    prices: PriceBook
    policies: tuple[BudgetPolicy, ...]
    unpriced_action: UnpricedAction = UnpricedAction.ESTIMATE
    # Checked when a decision is reserved, not by planning: they admit, they never route.
    rate_limits: tuple[RateLimit, ...] = ()
    # Which policies apply to a (scopes, model, provider, task class): the same few
    # combinations recur request after request, and matching every policy each time cost
    # ~10% of planning. Owned by the state, so a new state (changed policies) starts empty;
    # a combination not seen yet (a new session) is looked up in the index, compiled once.
    _applicable: dict[tuple[RequestScopes, str, str, str], tuple[tuple[BudgetPolicy, str], ...]] = (
        field(default_factory=dict, init=False, repr=False, compare=False)
    )
    _index: PolicyIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", PolicyIndex(self.policies))

    def applicable(
        self, scopes: RequestScopes, model: str, provider: str, task_class: str
    ) -> tuple[tuple[BudgetPolicy, str], ...]:
        """Each policy that applies to such a request, with the member it counts under."""
        key = (scopes, model, provider, task_class)
        found = self._applicable.get(key)
        if found is None:
            if len(self._applicable) >= _APPLICABLE_MEMO_LIMIT:
                self._applicable.clear()
            found = tuple(self._index.applicable(scopes, model, provider, task_class))
            self._applicable[key] = found
        return found


# Bounded: session ids make the scope combinations unbounded over time.
_APPLICABLE_MEMO_LIMIT = 50_000


@dataclass(frozen=True, slots=True)
class PlanCall:
    """One request to plan, with who sent it and what it asked of the gateway."""

    request: ChatRequest
    scopes: RequestScopes = field(default_factory=RequestScopes)
    task_class: TaskClass = TaskClass.PRIMARY_INTERACTIVE
    requested_mode: RoutingMode | None = None
    may_relax_mode: bool = False
    allowed_models: frozenset[str] | None = None
    # Price every candidate (for `explain`); the hot path prices only the models it needs.
    explain: bool = False
    # A uniform draw in [0, 1) that picks each model's deployment by weight.
    draw: float = 0.0
    # Plan on this provider's deployment only: a failover step the caller already chose.
    provider: str | None = None


def required_capabilities(request: ChatRequest) -> frozenset[Capability]:
    needs: set[Capability] = set()
    if request.json_mode:
        needs.add(Capability.JSON)
    if request.needs_vision:
        needs.add(Capability.VISION)
    if request.needs_tools:
        needs.add(Capability.TOOLS)
    if request.protocol is Protocol.EMBEDDINGS:
        needs.add(Capability.EMBEDDINGS)
    return frozenset(needs)


def is_embeddings_model(model: Model) -> bool:
    return Capability.EMBEDDINGS in model.capabilities


def plan(
    state: GovernanceState,
    call: PlanCall,
    *,
    now: datetime,
    decision_id: str,
    counters: CounterReader,
    health: Mapping[str, HealthState] = _NO_HEALTH,
    grants: Mapping[str, OverrideGrant] = _NO_GRANTS,
    counters_read_at: int | None = None,
) -> RoutingDecision:
    """``counters_read_at``: the ledger's version before ``counters`` is first called (see
    ``RoutingDecision.counters_read_at``)."""
    return _Planner(state, call, now, counters, health, grants).decide(
        decision_id, counters_read_at
    )


class _Planner:
    """Per-call working memory: estimates and evaluations are computed once per model."""

    def __init__(
        self,
        state: GovernanceState,
        call: PlanCall,
        now: datetime,
        counters: CounterReader,
        health: Mapping[str, HealthState],
        grants: Mapping[str, OverrideGrant],
    ) -> None:
        self.state = state
        self.call = call
        self.request = call.request
        self.now = now
        self.counters = counters
        self.health = health
        self.grants = grants
        self.tokens: TokenEstimate = estimate_input_tokens(call.request)
        # Embeddings keep the model asked for: vectors of different models are not
        # comparable, so no routing, degrade, escalation or failover to another model.
        self.pinned = call.request.protocol is Protocol.EMBEDDINGS
        self._estimates: dict[str, PricingEstimate] = {}
        self._unit_prices: dict[str, Decimal] = {}
        self._evaluations: dict[str, tuple[BudgetEvaluation, ...]] = {}
        self._amounts: dict[str, dict[Metric, tuple[Decimal | None, int | None]]] = {}
        self._orders: dict[str, tuple[Deployment, ...]] = {}
        self.codes: list[str] = []
        self.why: list[str] = []

    # -- building blocks -------------------------------------------------------------------

    def order(self, model: Model) -> tuple[Deployment, ...]:
        """The model's deployments in the order to try them, the chosen one first."""
        found = self._orders.get(model.id)
        if found is None:
            pinned = model.deployment_on(self.call.provider) if self.call.provider else None
            if pinned is None and self.request.stateful:
                # Its state lives on one provider: the model's first deployment, always.
                pinned = model.deployments[0]
            found = (
                (pinned,)
                if pinned is not None
                else deployment_order(model, self.health, self.call.draw)
            )
            self._orders[model.id] = found
        return found

    def provider_of(self, model: Model) -> str:
        """The provider of the deployment chosen for ``model``."""
        return self.order(model)[0].provider

    def estimate(self, model: Model) -> PricingEstimate:
        estimate = self._estimates.get(model.id)
        if estimate is None:
            estimate = estimate_cost(
                model,
                self.tokens,
                self.request.max_tokens,
                self.state.prices,
                self.now,
                self.state.unpriced_action,
                self.request.choices,
            )
            self._estimates[model.id] = estimate
        return estimate

    def evaluations(self, model: Model) -> tuple[BudgetEvaluation, ...]:
        cached = self._evaluations.get(model.id)
        if cached is not None:
            return cached
        amounts = self.amounts(model)
        # The loop of ``evaluate``, inlined: it runs once per applicable policy per request.
        now, counters, grants = self.now, self.counters, self.grants
        unpriced = self.state.unpriced_action
        evaluations: list[BudgetEvaluation] = []
        for policy, member in self.state.applicable(
            self.call.scopes, model.id, self.provider_of(model), self.call.task_class.value
        ):
            keys, window = counters_for(policy, member, now)
            amount, atto = amounts[policy.metric]
            evaluations.append(
                evaluate_policy(
                    policy,
                    member,
                    window,
                    counters(keys),
                    amount,
                    grant=grants.get(policy.id),
                    unpriced_action=unpriced,
                    keys=keys,
                    amount_atto=atto,
                )
            )
        found = self._evaluations[model.id] = tuple(evaluations)
        return found

    def amounts(self, model: Model) -> dict[Metric, tuple[Decimal | None, int | None]]:
        """The request's amount in each metric on ``model``, as estimated and in attos: once
        per model, not per policy."""
        found = self._amounts.get(model.id)
        if found is None:
            found = self._amounts[model.id] = request_amounts(self.estimate(model))
        return found

    def evaluate(self, policy: BudgetPolicy, member: str, model: Model) -> BudgetEvaluation:
        keys, window = counters_for(policy, member, self.now)
        amount, atto = self.amounts(model)[policy.metric]
        return evaluate_policy(
            policy,
            member,
            window,
            self.counters(keys),
            amount,
            grant=self.grants.get(policy.id),
            unpriced_action=self.state.unpriced_action,
            keys=keys,
            amount_atto=atto,
        )

    def resolve_mode(self, requested: Model) -> ModeResolution:
        """Only policies that carry a mode are looked at: evaluating every policy for the
        requested model would double planning time when routing picks another model."""
        imposed: list[tuple[str, RoutingMode]] = []
        for policy, member in self.state.applicable(
            self.call.scopes, requested.id, self.provider_of(requested), self.call.task_class.value
        ):
            if policy.mode is not None:
                imposed.append((policy.id, policy.mode))
            override = policy.routing_mode_override
            if override is not None and _soft_crossed(self.evaluate(policy, member, requested)):
                imposed.append((policy.id, override))
        return resolve_mode(
            self.state.settings.mode,
            imposed,
            self.call.requested_mode,
            self.call.may_relax_mode,
        )

    def health_of(self, model: Model) -> HealthState:
        """The chosen deployment's: unhealthy only when every deployment is."""
        return self.health.get(self.provider_of(model), HealthState.HEALTHY)

    def unit_price(self, model: Model) -> Decimal:
        """USD per 1M tokens at a 3:1 input:output mix: ranks models by price without
        pricing the whole request on each of them (which planning only needs for a few)."""
        price = self._unit_prices.get(model.id)
        if price is None:
            record = effective_record(
                model, self.state.prices, self.now, self.state.unpriced_action
            )
            price = (
                _UNKNOWN_PRICE
                if record is None
                else 3 * record.input_per_mtok + record.output_per_mtok
            )
            self._unit_prices[model.id] = price
        return price

    def cheapness(self, model: Model) -> tuple[int, Decimal, int]:
        return (model.cost_tier.rank, self.unit_price(model), model.latency_tier.rank)

    def speed(self, model: Model) -> tuple[int, int, Decimal]:
        return (model.latency_tier.rank, model.cost_tier.rank, self.unit_price(model))

    def note(self, code: str, sentence: str) -> None:
        self.codes.append(code)
        self.why.append(sentence)

    def note_output_ceiling(self, model: Model) -> None:
        """Enforced, the output ceiling reserved is also the limit the provider is sent (the
        gateway injects or lowers ``max_tokens``): say so when that changes what was asked."""
        asked = self.request.max_tokens
        ceiling = output_ceiling(model, asked)
        if asked is None:
            self.note(
                "output_ceiling_applied",
                f"The request set no output limit: {model.id} is sent a limit of {ceiling} "
                "output tokens, the ceiling reserved.",
            )
        elif asked > ceiling:
            self.note(
                "output_ceiling_applied",
                f"The request asked for up to {asked} output tokens, above {model.id}'s "
                f"maximum: it is sent a limit of {ceiling}, the ceiling reserved.",
            )

    def note_stateful(self, model: Model) -> None:
        """A request continuing state its provider holds (Responses API) is passed through
        to that provider and kept there; earlier context it refers to is billed as input."""
        fields = ", ".join(self.request.stateful)
        sentence = (
            f"The request uses {fields}: it is passed through to {model.provider}, which "
            "holds that state, and no other provider may serve it."
        )
        if self.tokens.unbounded:
            sentence += (
                " The earlier context it refers to is billed as input but unknown to the "
                f"gateway: up to {model.id}'s context window of "
                f"{self.estimate(model).input_tokens_upper} input tokens is reserved, and the "
                "request is settled on the provider's usage."
            )
        self.note("stateful_passthrough", sentence)

    # -- the decision ----------------------------------------------------------------------

    def requested_model(self) -> Model:
        name = self.request.model
        if name == AUTO_MODEL:
            name = self.state.settings.default_model
            self.note("default_model_used", f"The request asked for auto: starting from {name}.")
        model = self.state.models.get(name)
        if model is None or not model.enabled:
            raise ModelNotFoundError(self.request.model)
        allowed = self.call.allowed_models
        if allowed is not None and model.id not in allowed:
            raise ModelNotAllowedError(model.id)
        if self.pinned != is_embeddings_model(model):
            raise ModelUnsuitedError(model.id, self.unsuited(model))
        return model

    def unsuited(self, model: Model) -> str:
        kind = "an embeddings model" if self.pinned else "a chat model"
        others = sorted(
            m.id
            for m in self.state.models.values()
            if m.enabled and is_embeddings_model(m) == self.pinned
        )
        listed = f" Configured {kind}s: {', '.join(others)}." if others else ""
        if self.pinned:
            return (
                f"The model {model.id!r} cannot create embeddings: it is not declared with the "
                f"capability 'embeddings'. /v1/embeddings needs {kind}.{listed}"
            )
        return (
            f"The model {model.id!r} is an embeddings model: it only serves /v1/embeddings, "
            f"not this {_REQUEST_KINDS.get(self.request.protocol, 'chat')} request.{listed}"
        )

    def candidates(self, requested: Model) -> tuple[list[Candidate], list[Model]]:
        needs = required_capabilities(self.request)
        allowed = self.call.allowed_models
        candidates: list[Candidate] = []
        eligible: list[Model] = []
        for model in self.state.models.values():
            if not model.enabled:
                continue
            reason = ""
            missing = needs - model.capabilities
            if allowed is not None and model.id not in allowed:
                reason = "not allowed for this API key"
            elif missing:
                reason = "lacks " + ", ".join(sorted(c.value for c in missing))
            elif self.request.stateful and model.provider != requested.provider:
                reason = f"the request's state is held by {requested.provider}"
            elif self.pinned and model is not requested:
                reason = "embeddings keep the model asked for"
            elif not self.pinned and is_embeddings_model(model):
                reason = "an embeddings model"
            elif model.context_window is not None and self.tokens.lower > model.context_window:
                reason = (
                    f"context window {model.context_window} < ~{self.tokens.lower} input tokens"
                )
            if not reason:
                eligible.append(model)
            candidates.append(
                Candidate(
                    model=model.id,
                    provider=self.provider_of(model),
                    cost_tier=model.cost_tier,
                    latency_tier=model.latency_tier,
                    health=self.health_of(model),
                    estimate=self.estimate(model) if self.call.explain else None,
                    eligible=not reason,
                    reason=reason or ("requested" if model is requested else "eligible"),
                )
            )
        return candidates, eligible

    def choose_by_task(
        self, requested: Model, eligible: list[Model], complexity: ComplexityScore
    ) -> tuple[Model, RoutingAction]:
        settings = self.state.settings
        task = self.call.task_class
        if requested not in eligible:
            if not eligible:
                self.note(
                    "no_capable_model",
                    "No configured model has every capability this request needs; "
                    f"keeping {requested.id}.",
                )
                return requested, RoutingAction.PROCEED
            target = min(eligible, key=self.cheapness)
            self.note(
                "requested_model_lacks_capability",
                f"{requested.id} cannot serve this request "
                f"({', '.join(sorted(c.value for c in required_capabilities(self.request)))} "
                f"needed); {target.id} can.",
            )
            return target, self.action_between(requested, target)
        band = (
            "simple"
            if complexity.score < settings.simple_below
            else "complex"
            if complexity.score > settings.complex_above
            else "standard"
        )
        if settings.auxiliary_routing and task is TaskClass.AUXILIARY_CLASSIFICATION:
            target = min(eligible, key=self.speed)
            if target is not requested:
                self.note(
                    "auxiliary_task_low_latency",
                    f"Classification prefers low latency: {target.id} "
                    f"(latency tier {target.latency_tier.value}).",
                )
                return target, self.action_between(requested, target)
        elif settings.auxiliary_routing and task in _LOW_COST_TASKS and band != "complex":
            target = min(eligible, key=self.cheapness)
            if target is not requested:
                self.note(
                    "auxiliary_task_low_cost",
                    f"{task.value} prefers low cost: {target.id} "
                    f"(cost tier {target.cost_tier.value}).",
                )
                return target, self.action_between(requested, target)
        elif settings.smart_routing and band == "simple":
            target = min(eligible, key=self.cheapness)
            if self.cheapness(target) < self.cheapness(requested):
                self.note(
                    "simple_prompt_cheaper_model",
                    f"A simple prompt ({complexity.describe()}) goes to the cheaper {target.id}.",
                )
                return target, RoutingAction.DEGRADE
        elif settings.smart_routing and band == "complex" and task is TaskClass.PRIMARY_INTERACTIVE:
            target = max(eligible, key=lambda m: (m.cost_tier.rank, -self.unit_price(m)))
            if target.cost_tier.rank > requested.cost_tier.rank:
                self.note(
                    "complex_prompt_escalated",
                    f"A complex prompt ({complexity.describe()}) may escalate to {target.id}.",
                )
                return target, RoutingAction.ESCALATE
        if not settings.smart_routing:
            self.note("smart_routing_disabled", "Smart routing is off.")
        self.note("requested_model", f"{requested.id} suits this {band} {task.value} request.")
        return requested, RoutingAction.PROCEED

    def action_between(self, source: Model, target: Model) -> RoutingAction:
        if self.cheapness(target) < self.cheapness(source):
            return RoutingAction.DEGRADE
        if target.cost_tier.rank > source.cost_tier.rank:
            return RoutingAction.ESCALATE
        return RoutingAction.PROCEED

    def failover(
        self, target: Model, eligible: list[Model], action: RoutingAction
    ) -> tuple[Model, RoutingAction]:
        if self.health_of(target) is not HealthState.UNHEALTHY:
            return target, action
        where = self.where(target)
        if not self.state.settings.failover:
            self.note("failover_disabled", f"{where} unhealthy but failover is off.")
            return target, action
        healthy = [
            model
            for model in self.fallback_order(target, eligible)
            if self.health_of(model) is not HealthState.UNHEALTHY
        ]
        if not healthy:
            self.note(
                "no_healthy_alternative",
                f"{where} unhealthy and no other provider can serve this.",
            )
            return target, action
        alternative = healthy[0]
        self.note(
            "provider_unhealthy_failover",
            f"{where} unhealthy: failover to {alternative.id} on "
            f"{self.provider_of(alternative)}, budgets re-checked at its price.",
        )
        return alternative, RoutingAction.FAILOVER

    def where(self, model: Model) -> str:
        """Who is unhealthy when ``model`` is: its provider, or all its deployments."""
        if len(model.deployments) == 1:
            return f"Provider {model.provider} is"
        providers = ", ".join(d.provider for d in model.deployments)
        return f"Every deployment of {model.id} ({providers}) is"

    def fallback_order(self, target: Model, eligible: list[Model]) -> list[Model]:
        """Models on other providers that may replace ``target`` (a deployment on a provider
        ``target`` is not on): closest in cost tier first, cheaper before pricier, then the
        cheapest."""
        rank = target.cost_tier.rank
        used = {d.provider for d in target.deployments}
        return sorted(
            (
                model
                for model in eligible
                if model is not target and any(d.provider not in used for d in model.deployments)
            ),
            key=lambda m: (
                abs(m.cost_tier.rank - rank),
                m.cost_tier.rank > rank,
                *self.cheapness(m),
            ),
        )

    def apply_budgets(
        self, requested: Model, target: Model, action: RoutingAction, eligible: list[Model]
    ) -> tuple[Model, RoutingAction]:
        worst = most_severe(self.evaluations(target))
        if (
            action is RoutingAction.ESCALATE
            and worst is not None
            and (worst.status.severity >= BudgetStatus.SOFT_LIMIT.severity)
        ):
            self.note(
                "escalation_denied_by_budget",
                f"Escalation to {target.id} denied: {worst.message}",
            )
            target, action = requested, RoutingAction.PROCEED
            worst = most_severe(self.evaluations(target))
        if worst is None:
            self.note("no_budget_applies", "No budget policy applies to this request.")
            return target, action
        if worst.status is BudgetStatus.DEGRADED:
            return self.degrade(target, action, worst, eligible)
        return target, self.budget_verdict(target, action, worst)

    def degrade(
        self,
        target: Model,
        action: RoutingAction,
        worst: BudgetEvaluation,
        eligible: list[Model],
    ) -> tuple[Model, RoutingAction]:
        over_hard = worst.projected_atto > worst.policy.hard_atto
        cheaper = [m for m in eligible if self.cheapness(m) < self.cheapness(target)]
        preferred = self.state.models.get(worst.policy.degrade_to or "")
        if preferred is not None and preferred in cheaper:
            replacement: Model | None = preferred
        else:
            replacement = min(cheaper, key=self.cheapness) if cheaper else None
        if replacement is None and self.pinned:
            if over_hard:
                self.note(EMBEDDINGS_NOT_DEGRADED, f"{worst.message} {EMBEDDINGS_BLOCKED}")
                return target, RoutingAction.BLOCK
            self.note(
                EMBEDDINGS_NOT_DEGRADED,
                f"{worst.message} An embeddings request keeps its model (vectors of different "
                f"models are not comparable): {target.id} is kept.",
            )
            return target, action
        if replacement is None:
            if over_hard:
                self.note(
                    "degrade_unavailable",
                    f"{worst.message} No cheaper model can serve this request, so it is blocked.",
                )
                return target, RoutingAction.BLOCK
            self.note(
                "degrade_unavailable",
                f"{worst.message} No cheaper model can serve this request; keeping {target.id}.",
            )
            return target, action
        self.note(
            "budget_degrade",
            f"{worst.message} Degrading from {target.id} to {replacement.id}.",
        )
        after = most_severe(self.evaluations(replacement))
        if after is not None and (
            after.status.stops_request
            or (
                after.status is BudgetStatus.DEGRADED
                and after.projected_atto > after.policy.hard_atto
            )
        ):
            return replacement, self.budget_verdict(replacement, RoutingAction.BLOCK, after)
        return replacement, RoutingAction.DEGRADE

    def budget_verdict(
        self, target: Model, action: RoutingAction, worst: BudgetEvaluation
    ) -> RoutingAction:
        status = worst.status
        if status is BudgetStatus.OK:  # the common case: no message to render
            self.note("budget_ok", "Every applicable budget policy allows this request.")
            return action
        code = _BUDGET_CODES.get(status)
        if code is not None:
            self.note(code, worst.message)
        if status is BudgetStatus.BLOCKED:
            return RoutingAction.BLOCK
        if status is BudgetStatus.APPROVAL_REQUIRED:
            return RoutingAction.APPROVAL_REQUIRED
        return action

    def decide(self, decision_id: str, counters_read_at: int | None) -> RoutingDecision:
        requested = self.requested_model()
        complexity = score_complexity(self.request)
        candidates, eligible = self.candidates(requested)

        mode = self.resolve_mode(requested)
        self.codes.extend(mode.reason_codes)
        self.why.append(mode.explanation)
        if self.pinned:
            self.note(
                "embeddings_model_kept",
                f"Embeddings keep {requested.id}: vectors of different models are not "
                "comparable, so no routing, degrade, escalation or failover changes it.",
            )

        target, action = self.choose_by_task(requested, eligible, complexity)
        target, action = self.failover(target, eligible, action)
        target, action = self.apply_budgets(requested, target, action, eligible)

        if mode.mode is RoutingMode.ENFORCED or action is RoutingAction.PROCEED:
            actual, applied, would = target, action, None
        else:
            actual, applied, would = requested, RoutingAction.PROCEED, action
            if mode.mode is RoutingMode.SUGGEST:
                self.note(
                    "suggest_only",
                    f"Suggest mode: {requested.id} is called as asked; "
                    f"{target.id} is only recommended ({action.value}).",
                )
            else:
                self.note(
                    "dry_run_not_applied",
                    f"Dry run: enforcement would {action.value} (model {target.id}); "
                    f"{requested.id} is called as asked.",
                )
        calls = applied not in (RoutingAction.BLOCK, RoutingAction.APPROVAL_REQUIRED)
        if mode.mode is RoutingMode.ENFORCED and self.request.choices and calls:
            self.note_output_ceiling(actual)
        fallbacks = self.fallback_order(actual, eligible) if self.state.settings.failover else []
        route = self.route(actual, fallbacks)
        if calls:
            self.note_deployment(actual, route)
        if self.request.stateful:
            self.note_stateful(actual)
        elif self.tokens.unbounded:
            self.note(
                "input_size_unknown",
                "The request holds input whose size it does not state (a PDF, a file or URL "
                "it refers to, or what a hosted tool fetches): up to "
                f"{actual.id}'s context window of "
                f"{self.estimate(actual).input_tokens_upper} input tokens is reserved.",
            )
        saving = _saving(self.estimate(requested), self.estimate(target))
        actual_estimate = self.estimate(actual)
        if actual_estimate.unpriced:
            self.note(
                "unpriced_model",
                f"{actual.id} has no price: "
                + (
                    f"costs are estimated at its {actual.cost_tier.value} tier."
                    if actual_estimate.priced
                    else "its cost cannot be counted."
                ),
            )
        return RoutingDecision(
            id=decision_id,
            created_at=self.now,
            mode=mode.mode,
            scopes=self.call.scopes,
            task_class=self.call.task_class,
            requested_model=self.request.model,
            default_model=self.state.settings.default_model,
            recommended_model=target.id,
            target_model=actual.id,
            target_provider=self.provider_of(actual),
            complexity=complexity,
            health=self.health_of(actual),
            routing_action=applied,
            reason_codes=tuple(dict.fromkeys(self.codes)),
            explanation=tuple(self.why),
            estimate=actual_estimate,
            budget_evaluations=self.evaluations(actual),
            candidates=tuple(candidates),
            would_action=would,
            estimated_saving_usd=saving,
            fallbacks=tuple(dict.fromkeys(step.model for step in route if step.model != actual.id)),
            route=route,
            counters_read_at=counters_read_at,
        )

    def route(self, actual: Model, fallbacks: list[Model]) -> tuple[RouteStep, ...]:
        """Where to fail over, in order: ``actual`` on its other deployments, then each
        fallback on its deployments that are not on ``actual``'s providers (those failed)."""
        if not self.state.settings.failover or self.call.provider is not None:
            return ()
        steps = [RouteStep(actual.id, d.provider) for d in self.order(actual)[1:]]
        used = {d.provider for d in actual.deployments}
        for model in fallbacks:
            steps.extend(
                RouteStep(model.id, d.provider) for d in self.order(model) if d.provider not in used
            )
        return tuple(steps)

    def note_deployment(self, model: Model, route: tuple[RouteStep, ...]) -> None:
        """Say which of a model's several deployments serves it, and why."""
        if len(model.deployments) == 1 or self.call.provider is not None:
            return
        healthy = healthy_deployments(model, self.health)
        skipped = [d.provider for d in model.deployments if d not in healthy]
        if skipped and healthy:
            self.note(
                "deployment_unhealthy",
                f"{model.id}'s deployment on {', '.join(skipped)} is unhealthy (its circuit is "
                "open): skipped.",
            )
        chosen = self.order(model)[0]
        pool = healthy or model.deployments
        others = [step.provider for step in route if step.model == model.id]
        then = f"; failover to {', '.join(others)} next" if others else ""
        among = "the healthy ones" if healthy else "all of them (none is healthy)"
        self.note(
            "deployment_weighted",
            f"{model.id} has {len(model.deployments)} deployments: {chosen.provider} serves it, "
            f"picked by weight ({chosen.weight} of {sum(d.weight for d in pool)} among "
            f"{among}){then}.",
        )


_BUDGET_CODES = {
    BudgetStatus.THRESHOLD: "budget_threshold",
    BudgetStatus.SOFT_LIMIT: "budget_soft_limit",
    BudgetStatus.OVERRIDE_APPLIED: "budget_override_applied",
    BudgetStatus.UNPRICED: "budget_unpriced",
    BudgetStatus.HARD_LIMIT: "budget_hard_limit_alert",
    BudgetStatus.APPROVAL_REQUIRED: "budget_approval_required",
    BudgetStatus.BLOCKED: "budget_blocked",
}


def _soft_crossed(evaluation: BudgetEvaluation) -> bool:
    policy = evaluation.policy
    soft = policy.soft_atto
    limit = soft if soft is not None else policy.hard_atto
    return evaluation.request_amount is not None and evaluation.projected_atto > limit


def _saving(requested: PricingEstimate, target: PricingEstimate) -> Decimal | None:
    if requested.upper_usd is None or target.upper_usd is None:
        return None
    saving = requested.upper_usd - target.upper_usd
    return saving if saving > 0 else None
