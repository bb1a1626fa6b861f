"""Budget policies and their evaluation against incremental (policy, member, window) counters.

Every metric is cumulative over its window: consumed = settled + in-flight reserved, and a
request is judged on projected = consumed + its own upper bound. Every applicable policy
applies (AND); the request's outcome is the most severe evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from spendgate.domain.amounts import ATTO, amount_problem, from_atto, to_atto
from spendgate.domain.modes import RoutingMode
from spendgate.domain.pricing import PricingEstimate
from spendgate.domain.scopes import RequestScopes, ScopeKind, ScopeRef
from spendgate.domain.windows import (
    Interval,
    IntervalKind,
    Window,
    counter_span,
    oldest_live_key,
    rolling_duration_problem,
    window_for,
)

__all__ = [
    "DEFAULT_ALERT_THRESHOLDS",
    "BudgetEvaluation",
    "BudgetFilters",
    "BudgetPolicy",
    "BudgetStatus",
    "CounterKey",
    "CounterState",
    "CountingIdentity",
    "HardAction",
    "Metric",
    "OverrideGrant",
    "PolicyIndex",
    "SoftAction",
    "UnpricedAction",
    "applicable_policies",
    "counter_changes",
    "counters_for",
    "counting_changes",
    "current_window",
    "evaluate_policy",
    "format_amount",
    "is_live",
    "live_windows",
    "most_severe",
    "policy_problems",
    "request_amounts",
    "sum_counters",
]

ZERO = Decimal(0)
_ONE = Decimal(1)
# Builds a NamedTuple from all its fields without its generated ``__new__`` (a Python frame:
# 2.5× the cost), for those built once per applicable policy per request.
new_tuple = tuple.__new__
DEFAULT_ALERT_THRESHOLDS = (Decimal("0.5"), Decimal("0.8"), Decimal("0.95"))


class Metric(StrEnum):
    USD = "usd"
    TOKENS = "tokens"
    REQUESTS = "requests"


class SoftAction(StrEnum):
    ALERT = "alert"
    DEGRADE = "degrade"


class HardAction(StrEnum):
    BLOCK = "block"
    REQUIRE_APPROVAL = "require_approval"
    DEGRADE = "degrade"
    ALERT = "alert"


class UnpricedAction(StrEnum):
    """What a USD budget does with a model that has no price."""

    ESTIMATE = "estimate"  # price it by its cost tier, marked as an estimate
    BLOCK = "block"
    ALERT = "alert"  # let it through, reported as unpriced


class BudgetStatus(StrEnum):
    OK = "ok"
    THRESHOLD = "threshold"
    SOFT_LIMIT = "soft_limit"
    OVERRIDE_APPLIED = "override_applied"
    UNPRICED = "unpriced"
    HARD_LIMIT = "hard_limit"
    DEGRADED = "degraded"
    APPROVAL_REQUIRED = "approval_required"
    BLOCKED = "blocked"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @property
    def stops_request(self) -> bool:
        return self in (BudgetStatus.BLOCKED, BudgetStatus.APPROVAL_REQUIRED)


_SEVERITY = {status: rank for rank, status in enumerate(BudgetStatus)}


@dataclass(frozen=True, slots=True)
class BudgetFilters:
    """Optional narrowing of a policy; ``None`` means any."""

    models: frozenset[str] | None = None
    providers: frozenset[str] | None = None
    task_classes: frozenset[str] | None = None

    def match(self, model: str, provider: str, task_class: str) -> bool:
        return (
            (self.models is None or model in self.models)
            and (self.providers is None or provider in self.providers)
            and (self.task_classes is None or task_class in self.task_classes)
        )


class CountingIdentity(NamedTuple):
    """What a policy's counters measure: the unit, whose usage a member name stands for, and
    the span a window key stands for. A counter written under one identity read under another
    is wrong (1,010,242 tokens read as $1,010,242; a project's spend read as a principal's;
    a daily window's counter read as the month starting that day).

    Filters, the scope's id and the limits are not part of it: changing them changes which
    requests count from now on, or what is allowed, not what a counted amount means (member
    "acme" is project acme's usage whether the scope names acme or ``*``), so the usage already
    counted in the window stays counted.
    """

    metric: Metric
    scope_kind: ScopeKind
    interval: Interval


@dataclass(frozen=True, slots=True)
class BudgetPolicy:
    id: str
    scope: ScopeRef
    metric: Metric
    interval: Interval
    hard_limit: Decimal
    soft_limit: Decimal | None = None
    soft_action: SoftAction = SoftAction.ALERT
    hard_action: HardAction = HardAction.BLOCK
    degrade_to: str | None = None
    alert_thresholds: tuple[Decimal, ...] = DEFAULT_ALERT_THRESHOLDS
    routing_mode_override: RoutingMode | None = None
    mode: RoutingMode | None = None
    filters: BudgetFilters = field(default_factory=BudgetFilters)
    enabled: bool = True
    source: str = "config"
    # How many times the counting identity of the policy with this id changed: each change
    # starts fresh counters, named by ``counter_id`` (the id alone for generation 0; ids hold
    # no whitespace, so "<id> <generation>" is never another policy's).
    generation: int = 0
    counter_id: str = field(init=False, repr=False, compare=False)
    # (fraction, amount) of each alert threshold, highest first: computed once, not per request.
    threshold_amounts: tuple[tuple[Decimal, Decimal], ...] = field(
        init=False, repr=False, compare=False
    )
    # The limits in attos (``domain.amounts``), what evaluation compares integer counters
    # with; each threshold's is rounded up, which keeps ``projected >= threshold`` exact for
    # an integer ``projected`` (a fraction times a limit can have 36 places).
    hard_atto: int = field(init=False, repr=False, compare=False)
    soft_atto: int | None = field(init=False, repr=False, compare=False)
    threshold_attos: tuple[tuple[Decimal, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        amounts = sorted(
            ((fraction, fraction * self.hard_limit) for fraction in set(self.alert_thresholds)),
            reverse=True,
        )
        object.__setattr__(self, "threshold_amounts", tuple(amounts))
        # Storable amounts only: ``policy_problems`` reports the others (a policy read back
        # with a limit of 1e999999999 would be a billion-digit integer), which never plan.
        usable = amount_problem(self.hard_limit) is None
        object.__setattr__(self, "hard_atto", to_atto(self.hard_limit) if usable else 0)
        soft = self.soft_limit
        object.__setattr__(
            self,
            "soft_atto",
            to_atto(soft) if soft is not None and amount_problem(soft) is None else None,
        )
        # fraction × limit in atto² (exact), then rounded up to attos.
        hard = self.hard_atto
        attos = tuple(
            (fraction, -(-to_atto(fraction) * hard // ATTO))
            for fraction in sorted(set(self.alert_thresholds), reverse=True)
            if usable and amount_problem(fraction) is None
        )
        object.__setattr__(self, "threshold_attos", attos)
        counter_id = self.id if self.generation == 0 else f"{self.id} {self.generation}"
        object.__setattr__(self, "counter_id", counter_id)

    @property
    def counting(self) -> CountingIdentity:
        return CountingIdentity(self.metric, self.scope.kind, self.interval)

    def member_for(
        self, scopes: RequestScopes, model: str, provider: str, task_class: str
    ) -> str | None:
        """The member this request counts under, or ``None`` when the policy does not apply."""
        if not self.enabled or not self.filters.match(model, provider, task_class):
            return None
        return scopes.matched_member(self.scope)


class CounterKey(NamedTuple):
    """One counter: a policy (its ``counter_id``), the member it counts for, and a window
    bucket's key.
    A tuple, so hashing it (a dict lookup per counter per request) runs in C."""

    policy_id: str
    member: str
    window: str


class CounterState(NamedTuple):
    """A counter's settled and reserved amounts, in attos (``domain.amounts``); ``settled``,
    ``reserved`` and ``consumed`` are their exact ``Decimal`` values. A NamedTuple: the ledger
    builds one per applicable policy per request."""

    settled_atto: int = 0
    reserved_atto: int = 0

    @classmethod
    def of(cls, settled: Decimal = ZERO, reserved: Decimal = ZERO) -> CounterState:
        return cls(to_atto(settled), to_atto(reserved))

    @property
    def settled(self) -> Decimal:
        return from_atto(self.settled_atto)

    @property
    def reserved(self) -> Decimal:
        return from_atto(self.reserved_atto)

    @property
    def consumed_atto(self) -> int:
        return self.settled_atto + self.reserved_atto

    @property
    def consumed(self) -> Decimal:
        return from_atto(self.settled_atto + self.reserved_atto)

    # Sums the amounts (a tuple's ``+`` would concatenate them).
    def __add__(self, other: tuple[object, ...]) -> CounterState:
        assert isinstance(other, CounterState)
        return CounterState(
            self.settled_atto + other.settled_atto, self.reserved_atto + other.reserved_atto
        )


@dataclass(frozen=True, slots=True)
class OverrideGrant:
    """An approved budget override for one policy; ``extra`` caps it (``None``: uncapped);
    ``member``: the policy member it covers (``None``: whichever the request counts under)."""

    policy_id: str
    approval_id: str
    extra: Decimal | None = None
    member: str | None = None


class BudgetEvaluation(NamedTuple):
    """One policy's verdict on one request. ``message`` is rendered on demand (hot path).

    A NamedTuple rather than a frozen dataclass: a request builds one per applicable policy,
    and a frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) was the
    largest single self-time entry of the gateway's profile. ``keys`` are the counters the
    evaluation read, which the reservation and the settlement reuse. The counters it read are
    held in attos (``settled`` and ``reserved`` are their ``Decimal`` values); the request's
    amount both as estimated (``request_amount``, recorded as it is) and in attos
    (``amount_atto``, rounded up).
    """

    policy: BudgetPolicy
    member: str
    window: Window
    settled_atto: int
    reserved_atto: int
    request_amount: Decimal | None
    status: BudgetStatus
    threshold: Decimal | None = None
    approval_id: str | None = None
    keys: tuple[CounterKey, ...] = ()
    amount_atto: int | None = None

    @property
    def settled(self) -> Decimal:
        return from_atto(self.settled_atto)

    @property
    def reserved(self) -> Decimal:
        return from_atto(self.reserved_atto)

    @property
    def consumed_atto(self) -> int:
        return self.settled_atto + self.reserved_atto

    @property
    def projected_atto(self) -> int:
        """Consumed plus this request's amount (nothing for an unpriced one), in attos."""
        amount = self.amount_atto
        if amount is None:
            amount = 0 if self.request_amount is None else to_atto(self.request_amount)
        return self.settled_atto + self.reserved_atto + amount

    @property
    def policy_id(self) -> str:
        return self.policy.id

    @property
    def metric(self) -> Metric:
        return self.policy.metric

    @property
    def hard_limit(self) -> Decimal:
        return self.policy.hard_limit

    @property
    def soft_limit(self) -> Decimal | None:
        return self.policy.soft_limit

    @property
    def degrade_to(self) -> str | None:
        return self.policy.degrade_to if self.status is BudgetStatus.DEGRADED else None

    @property
    def consumed(self) -> Decimal:
        return from_atto(self.settled_atto + self.reserved_atto)

    # The Decimal views below are computed as before counters were integers, so an amount
    # keeps the form it had (``request_amount`` and ``hard_limit`` as written).
    @property
    def projected(self) -> Decimal:
        return self.consumed + (self.request_amount or ZERO)

    @property
    def remaining(self) -> Decimal:
        return max(self.hard_limit - self.consumed, ZERO)

    @property
    def percent(self) -> Decimal:
        if self.hard_limit <= 0:
            return Decimal(100)
        return self.consumed * 100 / self.hard_limit

    @property
    def message(self) -> str:
        return _message(self)


def applicable_policies(
    policies: Iterable[BudgetPolicy],
    scopes: RequestScopes,
    model: str,
    provider: str,
    task_class: str,
) -> list[tuple[BudgetPolicy, str]]:
    """Each policy that applies to the request, with the member it counts under."""
    result: list[tuple[BudgetPolicy, str]] = []
    for policy in policies:
        member = policy.member_for(scopes, model, provider, task_class)
        if member is not None:
            result.append((policy, member))
    return result


class PolicyIndex:
    """Which policies apply to a request, compiled once per policy set: the enabled policies
    by scope kind, those naming a member under their id, those counting each member apart.
    A request looks up its own member of each kind (a few dict reads) instead of matching
    every policy; only the filters of the policies found are checked.
    """

    __slots__ = ("_each", "_named")

    def __init__(self, policies: Iterable[BudgetPolicy]) -> None:
        # kind → [(position, policy)] for ``*`` scopes; (kind, id) → [(position, policy)].
        self._each: dict[ScopeKind, list[tuple[int, BudgetPolicy]]] = {}
        self._named: dict[tuple[ScopeKind, str], list[tuple[int, BudgetPolicy]]] = {}
        for position, policy in enumerate(policies):
            if not policy.enabled:
                continue
            scope = policy.scope
            if scope.each_member:
                self._each.setdefault(scope.kind, []).append((position, policy))
            else:
                self._named.setdefault((scope.kind, scope.id), []).append((position, policy))

    def applicable(
        self, scopes: RequestScopes, model: str, provider: str, task_class: str
    ) -> list[tuple[BudgetPolicy, str]]:
        """``applicable_policies`` of the indexed set: the same policies, in the same order."""
        found: list[tuple[int, BudgetPolicy, str]] = []
        for kind in ScopeKind:
            member = scopes.member(kind)
            if member is None:
                continue
            for group in (self._each.get(kind), self._named.get((kind, member))):
                if group:
                    found.extend(
                        (position, policy, member)
                        for position, policy in group
                        if policy.filters.match(model, provider, task_class)
                    )
        found.sort(key=_position)
        return [(policy, member) for _, policy, member in found]


def _position(entry: tuple[int, BudgetPolicy, str]) -> int:
    return entry[0]


def counters_for(
    policy: BudgetPolicy, member: str, at: datetime
) -> tuple[tuple[CounterKey, ...], Window]:
    """The counters (one per window bucket) a request at ``at`` is checked against, and the
    window they cover together."""
    interval = policy.interval
    memo = _keys_memo.get((policy.counter_id, member))
    # The interval by identity: a policy object rebuilt with an equal interval recomputes once.
    if memo is not None and memo[0] <= at < memo[1] and memo[2] is interval:
        return memo[3], memo[4]
    valid_from, valid_until, buckets = counter_span(interval, at)
    keys = tuple(CounterKey(policy.counter_id, member, bucket.key) for bucket in buckets)
    window = Window(buckets[0].start, buckets[-1].end)
    if len(_keys_memo) >= _MEMO_LIMIT:
        _keys_memo.clear()
    _keys_memo[(policy.counter_id, member)] = (valid_from, valid_until, interval, keys, window)
    return keys, window


# Counter keys per (policy, member), memoised with the instants their buckets answer for
# (``counter_span``): building the keys and the covering window per policy per request would
# dominate planning, and so would asking the window cache (it hashes the interval). While the
# buckets last, the very same key tuple is handed out (the Redis client memoises per tuple by
# identity). Bounded.
_MEMO_LIMIT = 10_000
_keys_memo: dict[
    tuple[str, str], tuple[datetime, datetime, Interval, tuple[CounterKey, ...], Window]
] = {}


def counter_changes(current: BudgetPolicy, proposed: BudgetPolicy) -> list[tuple[str, str]]:
    """Why ``proposed`` cannot replace ``current`` under the same id (field, reason): an update
    may not change what the policy's counters measure (its ``CountingIdentity``)."""
    return [
        (name, f"cannot change ({was} → {now}: its counters measure {was}); create a new "
         "budget instead")
        for name, was, now in _identity_differences(current.counting, proposed.counting)
    ]  # fmt: skip


def counting_changes(before: CountingIdentity, after: CountingIdentity) -> list[str]:
    """What differs between two counting identities, for people: ``metric tokens → usd``."""
    return [f"{name} {was} → {now}" for name, was, now in _identity_differences(before, after)]


def _identity_differences(
    before: CountingIdentity, after: CountingIdentity
) -> list[tuple[str, str, str]]:
    fields = (
        ("metric", before.metric.value, after.metric.value),
        ("scope.kind", before.scope_kind.value, after.scope_kind.value),
        ("interval", str(before.interval), str(after.interval)),
    )
    return [(name, was, now) for name, was, now in fields if was != now]


def policy_problems(policy: BudgetPolicy) -> list[tuple[str, str]]:
    """What makes ``policy`` unusable (field, reason): the bounds the config and the admin API
    enforce, checked again on records read back from the database (written by an older
    version or by hand), so one bad record cannot break planning for its whole scope."""
    problems: list[tuple[str, str]] = []
    duration = policy.interval.duration
    if policy.interval.kind is IntervalKind.ROLLING and duration is not None:
        why = rolling_duration_problem(duration)
        if why is not None:
            problems.append(("interval.duration", why))
    for name, value in (("hard_limit", policy.hard_limit), ("soft_limit", policy.soft_limit)):
        if value is None:
            continue
        why = amount_problem(value)
        if why is None and value <= 0:
            why = f"must be greater than 0 (got {value})"
        if why is not None:
            problems.append((name, why))
    for index, fraction in enumerate(policy.alert_thresholds):
        why = amount_problem(fraction)
        if why is None and not 0 < fraction <= 1:
            why = f"{fraction} is not a fraction of the hard limit in (0, 1]"
        if why is not None:
            problems.append((f"alert_thresholds[{index}]", why))
    return problems


def request_amounts(estimate: PricingEstimate) -> dict[Metric, tuple[Decimal | None, int | None]]:
    """This request's upper-bound amount in each metric, as estimated and in attos (rounded
    up); ``None`` for USD of an unpriced model."""
    usd = estimate.upper_usd
    tokens = estimate.tokens_upper
    return {
        Metric.USD: (usd, None if usd is None else to_atto(usd)),
        Metric.TOKENS: (Decimal(tokens), tokens * ATTO),
        Metric.REQUESTS: (_ONE, ATTO),
    }


def evaluate_policy(
    policy: BudgetPolicy,
    member: str,
    window: Window,
    counter: CounterState,
    amount: Decimal | None,
    *,
    grant: OverrideGrant | None = None,
    unpriced_action: UnpricedAction = UnpricedAction.ESTIMATE,
    keys: tuple[CounterKey, ...] = (),
    amount_atto: int | None = None,
) -> BudgetEvaluation:
    """Judge one request against one policy's counter (read from ``keys``) in its current
    window, in integer attos (``amount_atto``: ``amount`` in attos, when the caller has it).
    """
    threshold: Decimal | None = None
    approval_id: str | None = None
    settled, reserved = counter
    if amount is None:
        amount_atto = None
        status = (
            BudgetStatus.BLOCKED
            if unpriced_action is UnpricedAction.BLOCK
            else BudgetStatus.UNPRICED
        )
    else:
        if amount_atto is None:
            amount_atto = to_atto(amount)
        projected = settled + reserved + amount_atto
        if projected > policy.hard_atto:
            if (
                grant is not None
                and grant.member in (None, member)
                and (grant.extra is None or projected <= policy.hard_atto + to_atto(grant.extra))
            ):
                status = BudgetStatus.OVERRIDE_APPLIED
                approval_id = grant.approval_id
            else:
                status = _HARD_STATUS[policy.hard_action]
        elif policy.soft_atto is not None and projected > policy.soft_atto:
            status = _SOFT_STATUS[policy.soft_action]
        else:
            status = BudgetStatus.OK
            for fraction, threshold_atto in policy.threshold_attos:
                if projected >= threshold_atto:
                    threshold = fraction
                    status = BudgetStatus.THRESHOLD
                    break
    return new_tuple(
        BudgetEvaluation,
        (
            policy,
            member,
            window,
            settled,
            reserved,
            amount,
            status,
            threshold,
            approval_id,
            keys,
            amount_atto,
        ),
    )


_HARD_STATUS = {
    HardAction.BLOCK: BudgetStatus.BLOCKED,
    HardAction.REQUIRE_APPROVAL: BudgetStatus.APPROVAL_REQUIRED,
    HardAction.DEGRADE: BudgetStatus.DEGRADED,
    HardAction.ALERT: BudgetStatus.HARD_LIMIT,
}
_SOFT_STATUS = {
    SoftAction.ALERT: BudgetStatus.SOFT_LIMIT,
    SoftAction.DEGRADE: BudgetStatus.DEGRADED,
}


def _message(evaluation: BudgetEvaluation) -> str:
    policy = evaluation.policy
    label = f"{policy.id} ({policy.scope}, {policy.metric.value}, {policy.interval})"
    status = evaluation.status
    amount = evaluation.request_amount
    if amount is None:
        if status is BudgetStatus.BLOCKED:
            return f"{label}: the model is unpriced and unpriced models are blocked."
        return f"{label}: the model is unpriced, so this request's cost cannot be counted."
    used = f"{format_amount(evaluation.consumed)} used + {format_amount(amount)} for this request"
    hard = f"{label}: {used} would exceed the hard limit {format_amount(policy.hard_limit)}"
    soft = f"{label}: {used} crosses the soft limit {format_amount(policy.soft_limit or ZERO)}"
    over_hard = evaluation.projected_atto > policy.hard_atto
    if status is BudgetStatus.OVERRIDE_APPLIED:
        return f"{hard}; approved override {evaluation.approval_id} covers it."
    if status is BudgetStatus.BLOCKED:
        return f"{hard}; the request is blocked."
    if status is BudgetStatus.APPROVAL_REQUIRED:
        return f"{hard}; a budget override must be approved."
    if status is BudgetStatus.DEGRADED:
        return f"{hard if over_hard else soft}; routing degrades to a cheaper model."
    if status is BudgetStatus.HARD_LIMIT:
        return f"{hard}; alert only."
    if status is BudgetStatus.SOFT_LIMIT:
        return f"{soft}."
    if status is BudgetStatus.THRESHOLD and evaluation.threshold is not None:
        return (
            f"{label}: {used} reaches {format_amount(evaluation.threshold * 100)}% of the "
            f"hard limit {format_amount(policy.hard_limit)}."
        )
    return f"{label}: {used} is within the limit {format_amount(policy.hard_limit)}."


def most_severe(evaluations: Iterable[BudgetEvaluation]) -> BudgetEvaluation | None:
    """The evaluation that decides the request's outcome (first of equals wins)."""
    worst: BudgetEvaluation | None = None
    worst_severity = -1  # below every status's rank; each evaluation's rank is read once
    for evaluation in evaluations:
        severity = _SEVERITY[evaluation.status]
        if severity > worst_severity:
            worst, worst_severity = evaluation, severity
    return worst


def sum_counters(
    states: Mapping[CounterKey, CounterState], keys: Iterable[CounterKey]
) -> CounterState:
    total = CounterState()
    for key in keys:
        state = states.get(key)
        if state is not None:
            total = total + state
    return total


def live_windows(policies: Iterable[BudgetPolicy], at: datetime) -> dict[str, str]:
    """Per counter id (a policy's id, or its id and generation once its counting identity
    changed), the key of the oldest window bucket a request at ``at`` still reads.

    A counter is live (``is_live``) when its counter id is listed and its window key is not older:
    counters of windows that ended, rolling buckets older than the duration, and counters of
    policies that no longer exist can never affect a decision again. Disabled policies count
    (they may be enabled again). An id listed twice keeps the older key.
    """
    live: dict[str, str] = {}
    for policy in policies:
        key = oldest_live_key(policy.interval, at)
        previous = live.get(policy.counter_id)
        live[policy.counter_id] = key if previous is None else min(previous, key)
    return live


def is_live(live: Mapping[str, str], policy_id: str, window_key: str) -> bool:
    """Whether counters of ``policy_id`` in ``window_key`` can still be read, given
    ``live_windows``."""
    since = live.get(policy_id)
    return since is not None and window_key >= since


def current_window(policy: BudgetPolicy, at: datetime) -> Window:
    return window_for(policy.interval, at)


def format_amount(value: Decimal) -> str:
    """An amount for people: no exponent, no trailing zeros (``5``, ``0.0012``)."""
    normalized = value.normalize()
    if normalized == normalized.to_integral():
        return f"{normalized.quantize(Decimal(1))}"
    return f"{normalized:f}"
