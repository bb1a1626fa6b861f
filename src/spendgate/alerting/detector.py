"""The alert detector: what is wrong now, from what the gateway holds in memory.

The request path only queues: ``settled`` and ``refused`` (the governor's observer) append to
a bounded deque and wake the detector. ``evaluate`` then runs on the event loop, away from any
request, reading the in-memory ledger and provider health, never the database:

* an **event pass** (woken by requests, at most once a second) looks at the requests queued
  since the last pass: cost spikes, unpriced models, and the budgets they touched;
* a **full pass** (every ``alerts.evaluate_every_seconds``) looks at every budget member, the
  providers, the hourly spend rates, and resolves what no longer holds.

``Findings`` says which conditions were seen (each seen occurrence counts once) and which
alerts cleared; the ``AlertBook`` writes them. An alert clears when its condition is gone: a
budget threshold when its window ends (rolling windows: when spending falls back under it),
an exhaustion when the budget is under its limit and refused nothing for a cooldown, a
forecast when its window ends or the budget is exhausted, a cost spike or an unpriced model
when not seen for a cooldown, a rate anomaly when the hour calms down, a provider when it is
steadily healthy again.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from statistics import median
from typing import NamedTuple

from spendgate.alerting.outcomes import RequestOutcome, refused_outcome, settled_outcome
from spendgate.config.alerts import AlertsSpec
from spendgate.domain.alerts import (
    AlertCondition,
    AlertKind,
    HealthHysteresis,
    SpendBaseline,
    anomaly_condition,
    budget_conditions,
    cost_spike_condition,
    forecast_condition,
    is_cost_spike,
    provider_condition,
    unpriced_condition,
)
from spendgate.domain.budgets import BudgetPolicy, BudgetStatus, counters_for
from spendgate.domain.health import CircuitState, HealthBoard
from spendgate.domain.keys import ApiKey
from spendgate.domain.routing import HealthState, RoutingDecision
from spendgate.domain.scopes import GLOBAL_MEMBER, ScopeKind, member_tenant, tenant_of
from spendgate.domain.windows import counter_buckets
from spendgate.governor import Governor
from spendgate.store.records import Alert

__all__ = ["AlertDetector", "Findings", "Seen"]

# Requests queued between passes; beyond it the oldest are dropped (and counted): the request
# path never waits for the detector.
MAX_QUEUED = 50_000
# Recent costs per scope that the spike rule's median is taken over.
SPIKE_HISTORY = 200
# Hours of spend history a scope's baseline keeps catching up on after a quiet spell.
MAX_CATCH_UP_HOURS = 168

# Requests without a tenant (library callers naming no key, project or principal).
_GLOBAL_SCOPE = f"{ScopeKind.GLOBAL.value}:{GLOBAL_MEMBER}"
_QUIET_KINDS = frozenset({AlertKind.COST_SPIKE, AlertKind.UNPRICED_MODEL})


_OK = BudgetStatus.OK
_UNKNOWN = "\0"  # not in the tenant cache yet (a tenant is never this)


class Seen(NamedTuple):
    condition: AlertCondition
    tenant: str | None  # who besides the admins may read the alert
    occurrences: int
    new: bool = False  # not open before this pass


@dataclass(slots=True)
class Findings:
    seen: list[Seen] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)  # dedupe keys

    def __bool__(self) -> bool:
        return bool(self.seen or self.cleared)

    def split(self) -> tuple[Findings, Findings]:
        """(what must be written now: new alerts and resolutions; more occurrences of alerts
        already open, which may wait)."""
        new = [seen for seen in self.seen if seen.new]
        again = [seen for seen in self.seen if not seen.new]
        return Findings(new, self.cleared), Findings(again)

    def drop(self, keys: Iterable[str]) -> None:
        gone = set(keys)
        if gone:
            self.seen = [s for s in self.seen if s.condition.dedupe_key not in gone]

    def merge(self, other: Findings) -> None:
        """Add ``other``'s findings (occurrences of one condition add up)."""
        seen = {s.condition.dedupe_key: s for s in self.seen}
        for more in other.seen:
            key = more.condition.dedupe_key
            earlier = seen.get(key)
            seen[key] = (
                more
                if earlier is None
                else more._replace(
                    occurrences=earlier.occurrences + more.occurrences, new=earlier.new or more.new
                )
            )
        self.seen = list(seen.values())
        self.cleared = [*self.cleared, *other.cleared]


@dataclass(slots=True)
class _Active:
    kind: AlertKind
    severity: str
    last_seen: datetime


class AlertDetector:
    def __init__(
        self,
        governor: Governor,
        health: HealthBoard,
        spec: AlertsSpec,
        find_key: Callable[[str], ApiKey | None],
        *,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._governor = governor
        self._health = health
        self._spec = spec
        self._find_key = find_key
        self._queue: deque[RequestOutcome] = deque(maxlen=max_queued)
        self.dropped = 0  # outcomes dropped because the detector fell behind
        self.wake: Callable[[], None] = _nothing
        self._active: dict[str, _Active] = {}
        self._costs: defaultdict[str, deque[Decimal]] = defaultdict(
            lambda: deque(maxlen=SPIKE_HISTORY)
        )
        # scope → epoch minute → spend, for the last hour's spend; scope → epoch hour → spend
        # and the baseline those hours feed once complete.
        self._minutes: defaultdict[str, defaultdict[int, float]] = defaultdict(
            lambda: defaultdict(float)
        )
        self._hours: defaultdict[str, defaultdict[int, float]] = defaultdict(
            lambda: defaultdict(float)
        )
        self._baselines: dict[str, tuple[int, SpendBaseline]] = {}
        self._providers: dict[str, HealthHysteresis] = {}
        self._refusals: dict[str, datetime] = {}  # exhaustion key → last refusal
        # (project, principal, key) → tenant, computed once per caller.
        self._tenants: dict[tuple[str | None, str | None, str | None], str | None] = {}

    # -- the request path: record and return ---------------------------------------------

    def settled(self, decision: RoutingDecision, cost: Decimal | None, unpriced: bool) -> None:
        self._push(settled_outcome(decision, cost, unpriced))

    def refused(self, decision: RoutingDecision, policy_id: str | None) -> None:
        self._push(refused_outcome(decision, policy_id))

    def feed(self, outcomes: Iterable[RequestOutcome]) -> None:
        """Outcomes of requests served by other replicas (relayed: ``alerting.relay``)."""
        for outcome in outcomes:
            self._push(outcome)

    def _push(self, outcome: RequestOutcome) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(outcome)
        self.wake()

    # -- state ---------------------------------------------------------------------------------

    def resume(self, unresolved: Iterable[Alert]) -> None:
        """Take over the alerts left open by the previous run, so that they resolve (or keep
        counting) rather than open twice; a provider reported unhealthy stays reported until
        it is seen healthy."""
        for alert in unresolved:
            kind = AlertKind(alert.alert_kind)
            if kind is AlertKind.LEDGER_UNAVAILABLE:
                # The ledger watch's (on every replica): no rule here holds it, so taking it
                # over would resolve it at the next full pass while a replica is still cut off.
                continue
            self._active[alert.dedupe_key] = _Active(kind, alert.severity, alert.last_seen)
            if kind is AlertKind.PROVIDER_HEALTH:
                self._providers[alert.scope.removeprefix("provider:")] = HealthHysteresis(True)

    def open_alerts(self) -> dict[tuple[str, str], int]:
        """Unresolved alerts by (kind, severity), as this detector knows them."""
        counts: defaultdict[tuple[str, str], int] = defaultdict(int)
        for active in self._active.values():
            counts[(active.kind.value, active.severity)] += 1
        return dict(counts)

    def forget(self, findings: Findings) -> None:
        """The findings could not be written: look for them again next time."""
        for seen in findings.seen:
            self._active.pop(seen.condition.dedupe_key, None)

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- evaluation ------------------------------------------------------------------------------

    def evaluate(self, now: datetime, *, full: bool) -> Findings:
        seen: dict[str, Seen] = {}
        touched: defaultdict[tuple[str, str], int] = defaultdict(int)
        refused: set[tuple[str, str]] = set()
        spent: defaultdict[str, Decimal] = defaultdict(Decimal)  # scope → cost in this pass
        while self._queue:
            outcome = self._queue.popleft()
            self._outcome(outcome, seen, touched, refused, spent)
        minute, hour = int(now.timestamp() // 60), int(now.timestamp() // 3600)
        for scope, cost in spent.items():  # counted when seen: within a pass of its request
            self._minutes[scope][minute] += float(cost)
            self._hours[scope][hour] += float(cost)
        policies = {policy.id: policy for policy in self._governor.state.policies}
        for (policy_id, member), count in touched.items():
            policy = policies.get(policy_id)
            if policy is not None and policy.enabled:
                for condition in self._budget(policy, member, now, (policy_id, member) in refused):
                    _add(seen, condition, self._budget_tenant(policy, member), count)
        holding: set[str] = set()
        if full:
            self._all_budgets(policies.values(), now, seen, holding)
            self._provider_health(seen, holding)
            self._spend_rates(now, seen, holding)
        findings = Findings(
            [s._replace(new=s.condition.dedupe_key not in self._active) for s in seen.values()]
        )
        for seen_one in findings.seen:
            condition = seen_one.condition
            self._active[condition.dedupe_key] = _Active(
                condition.kind, condition.severity.value, now
            )
        if full:
            findings.cleared = self._clear(now, holding | seen.keys())
        return findings

    def _outcome(
        self,
        outcome: RequestOutcome,
        seen: dict[str, Seen],
        touched: defaultdict[tuple[str, str], int],
        refused: set[tuple[str, str]],
        spent: defaultdict[str, Decimal],
    ) -> None:
        for key in outcome.budgets:
            touched[key] += 1
        if outcome.refused:
            refused.update(outcome.refusing)
            return
        caller = outcome.caller
        tenant = self._tenants.get(caller, _UNKNOWN)
        if tenant is _UNKNOWN:
            tenant = self._tenants[caller] = tenant_of(*caller)
        if outcome.unpriced:
            _add(seen, unpriced_condition(outcome.model, outcome.provider), None)
        cost = outcome.cost
        if cost is None:
            return
        scope = tenant or _GLOBAL_SCOPE
        recent = self._costs[scope]
        spec = self._spec
        if is_cost_spike(cost, recent, spec.cost_spike_usd, spec.spike_factor):
            usual = median(recent) if recent else None
            condition = cost_spike_condition(scope, cost, usual, outcome.model, outcome.decision_id)
            _add(seen, condition, tenant)
        recent.append(cost)
        spent[scope] += cost

    def _budget(
        self, policy: BudgetPolicy, member: str, now: datetime, refused: bool
    ) -> list[AlertCondition]:
        keys, window = counters_for(policy, member, now)
        spent = self._governor.ledger.read_total(keys).settled
        exhausted_key = f"{AlertKind.BUDGET_EXHAUSTED}|{policy.id}|{member}"
        if refused:
            self._refusals[exhausted_key] = now
        last_refusal = self._refusals.get(exhausted_key)
        recently = last_refusal is not None and now - last_refusal < self._spec.cooldown
        found = budget_conditions(policy, member, window, spent, refused=recently)
        forecast = forecast_condition(policy, member, window, spent, now)
        if forecast is not None and not any(c.kind is AlertKind.BUDGET_EXHAUSTED for c in found):
            found.append(forecast)
        return found

    def _all_budgets(
        self,
        policies: Iterable[BudgetPolicy],
        now: datetime,
        seen: dict[str, Seen],
        holding: set[str],
    ) -> None:
        """Every member's conditions: new ones are seen (opened), known ones hold."""
        for policy in policies:
            if not policy.enabled:
                continue
            for member in self._members(policy, now):
                tenant = self._budget_tenant(policy, member)
                conditions = self._budget(policy, member, now, False)
                exhausted = any(c.kind is AlertKind.BUDGET_EXHAUSTED for c in conditions)
                for condition in conditions:
                    if condition.dedupe_key in self._active:
                        holding.add(condition.dedupe_key)
                    elif condition.dedupe_key not in seen:
                        _add(seen, condition, tenant)
                if not exhausted:
                    # A forecast stays until its window ends: a pace that wobbles around
                    # the limit must not open and close it over and over.
                    prefix = f"{AlertKind.FORECAST_EXHAUSTION}|{policy.id}|{member}|"
                    window = counters_for(policy, member, now)[1]
                    key = prefix + window.key
                    if key in self._active:
                        holding.add(key)

    def _members(self, policy: BudgetPolicy, now: datetime) -> Iterable[str]:
        if not policy.scope.each_member:
            return (policy.scope.id,)
        windows = [bucket.key for bucket in counter_buckets(policy.interval, now)]
        return sorted(self._governor.ledger.members(policy.counter_id, windows))

    def _budget_tenant(self, policy: BudgetPolicy, member: str) -> str | None:
        key_tenant = None
        if policy.scope.kind is ScopeKind.API_KEY:
            key = self._find_key(member)
            key_tenant = None if key is None else key.tenant
        return member_tenant(policy.scope.kind, member, key_tenant)

    def _provider_health(self, seen: dict[str, Seen], holding: set[str]) -> None:
        for snapshot in self._health.snapshots(time.monotonic()):
            healthy = (
                snapshot.state is HealthState.HEALTHY and snapshot.circuit is CircuitState.CLOSED
            )
            hysteresis = self._providers.get(snapshot.provider, HealthHysteresis())
            hysteresis = self._providers[snapshot.provider] = hysteresis.observe(healthy)
            if not hysteresis.raised:
                continue
            condition = provider_condition(
                snapshot.provider, snapshot.state.value, snapshot.circuit.value, snapshot.reason
            )
            if healthy:  # raised, not steadily healthy yet: holds without counting
                holding.add(condition.dedupe_key)
            else:
                _add(seen, condition, None)

    def _spend_rates(self, now: datetime, seen: dict[str, Seen], holding: set[str]) -> None:
        minute, hour = int(now.timestamp() // 60), int(now.timestamp() // 3600)
        for scope, minutes in list(self._minutes.items()):
            for old in [m for m in minutes if m <= minute - 60]:
                del minutes[old]
            baseline = self._catch_up(scope, hour)
            spend = sum(minutes.values())
            condition = anomaly_condition(scope, spend, baseline)
            key = condition.dedupe_key
            if key in self._active and not baseline.calm(spend):
                holding.add(key)
            elif key not in self._active and baseline.anomaly(spend):
                _add(seen, condition, None if scope == _GLOBAL_SCOPE else scope)
            if not minutes and not self._hours[scope]:
                del self._minutes[scope]

    def _catch_up(self, scope: str, hour: int) -> SpendBaseline:
        """The scope's baseline, fed every complete hour up to ``hour`` (quiet ones as 0)."""
        last, baseline = self._baselines.get(scope, (None, SpendBaseline()))
        hours = self._hours[scope]
        first = min(hours, default=hour) if last is None else last + 1
        for index in range(max(first, hour - MAX_CATCH_UP_HOURS), hour):
            baseline = baseline.observe(hours.pop(index, 0.0))
        for old in [h for h in hours if h < hour]:
            del hours[old]
        self._baselines[scope] = (hour - 1, baseline)
        return baseline

    def _clear(self, now: datetime, holding: set[str]) -> list[str]:
        quiet_since = now - self._spec.cooldown
        cleared = []
        for key, active in list(self._active.items()):
            if key in holding:
                continue
            if active.kind in _QUIET_KINDS and active.last_seen > quiet_since:
                continue
            del self._active[key]
            cleared.append(key)
        for key, at in list(self._refusals.items()):
            if at <= quiet_since:
                del self._refusals[key]
        return cleared


def _add(seen: dict[str, Seen], condition: AlertCondition, tenant: str | None, n: int = 1) -> None:
    previous = seen.get(condition.dedupe_key)
    count = n if previous is None else previous.occurrences + n
    seen[condition.dedupe_key] = Seen(condition, tenant, count)


def _nothing() -> None:
    return None
