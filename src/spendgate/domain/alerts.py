"""Alert rules: which conditions are worth telling a person about. Pure: the time is passed in.

Each rule turns what the gateway knows (a policy's consumption in its window, one request's
cost against its scope's recent costs, a scope's hourly spend against its own baseline, a
provider's health observations) into ``AlertCondition``s. A condition's ``dedupe_key`` names
the condition, not the occurrence: the same condition seen again is the same alert, whose count
grows, and a condition no longer seen resolves it. The rules are chosen so that the failures
users of other gateways report cannot happen: a spike alert fires on a rise only, never on a
drop; a threshold is announced once per member and window; a flapping provider is reported
once, not on every flap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from statistics import median

from spendgate.domain.budgets import BudgetPolicy, SoftAction, format_amount
from spendgate.domain.windows import IntervalKind, Window

__all__ = [
    "AlertCondition",
    "AlertKind",
    "HealthHysteresis",
    "Severity",
    "SpendBaseline",
    "anomaly_condition",
    "budget_conditions",
    "cost_spike_condition",
    "exhaustion_forecast",
    "forecast_condition",
    "is_cost_spike",
    "ledger_condition",
    "provider_condition",
    "unpriced_condition",
]


class AlertKind(StrEnum):
    BUDGET_THRESHOLD = "budget_threshold"
    BUDGET_EXHAUSTED = "budget_exhausted"
    COST_SPIKE = "cost_spike"
    SPEND_RATE_ANOMALY = "spend_rate_anomaly"
    FORECAST_EXHAUSTION = "forecast_exhaustion"
    PROVIDER_HEALTH = "provider_health"
    UNPRICED_MODEL = "unpriced_model"
    LEDGER_UNAVAILABLE = "ledger_unavailable"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


@dataclass(frozen=True, slots=True)
class AlertCondition:
    kind: AlertKind
    severity: Severity
    scope: str  # e.g. "project:acme", "provider:alpha"
    dedupe_key: str  # the same condition, the same key
    summary: str
    reason: str
    recommended_action: str


def _budget_scope(policy: BudgetPolicy, member: str) -> str:
    return f"{policy.scope.kind.value}:{member}"


def _window_key(policy: BudgetPolicy, window: Window) -> str:
    """Calendar windows: the window's own key (a threshold is announced once per window).
    A rolling window moves with every bucket, so its alerts are keyed by the policy and member
    alone and clear when the spend falls back under the threshold."""
    return "rolling" if policy.interval.kind is IntervalKind.ROLLING else window.key


def budget_conditions(
    policy: BudgetPolicy,
    member: str,
    window: Window,
    spent: Decimal,
    *,
    refused: bool = False,
) -> list[AlertCondition]:
    """The thresholds of ``policy`` that ``spent`` (settled usage) has crossed in ``window``,
    one condition each (keyed by member, window and threshold: announced once per window),
    its soft limit when its soft action is to alert, and ``budget_exhausted`` once the hard
    limit is reached or a request was ``refused`` by it (reservations are upper bounds, so a
    budget refuses requests before its settled usage reaches the limit exactly)."""
    scope = _budget_scope(policy, member)
    base = f"{policy.id}|{member}|{_window_key(policy, window)}"
    limit = policy.hard_limit
    used = f"{format_amount(spent)} of {format_amount(limit)} {policy.metric.value} spent"
    ends = f"the window ending {window.end.isoformat()}"
    if policy.interval.kind is IntervalKind.ROLLING:
        ends = f"the last {policy.interval}".replace("rolling ", "")
    action = (
        f"Check who is spending under {scope}; raise the limit of {policy.id} or route to "
        "cheaper models if this is expected."
    )
    found: list[AlertCondition] = []
    for fraction, amount in sorted(policy.threshold_amounts):
        if spent < amount:
            break
        percent = format_amount(fraction * 100)
        found.append(
            AlertCondition(
                kind=AlertKind.BUDGET_THRESHOLD,
                severity=Severity.CRITICAL if fraction >= Decimal("0.95") else Severity.WARNING,
                scope=scope,
                dedupe_key=f"{AlertKind.BUDGET_THRESHOLD}|{base}|{fraction}",
                summary=f"Budget {policy.id} for {member} passed {percent}% of its limit",
                reason=f"{used} in {ends}.",
                recommended_action=action,
            )
        )
    soft = policy.soft_limit
    if soft is not None and policy.soft_action is SoftAction.ALERT and spent >= soft:
        found.append(
            AlertCondition(
                kind=AlertKind.BUDGET_THRESHOLD,
                severity=Severity.WARNING,
                scope=scope,
                dedupe_key=f"{AlertKind.BUDGET_THRESHOLD}|{base}|soft",
                summary=f"Budget {policy.id} for {member} passed its soft limit",
                reason=f"{used} in {ends} (soft limit {format_amount(soft)}).",
                recommended_action=action,
            )
        )
    if spent >= limit or refused:
        reason = f"{used} in {ends}; requests now get its hard action ({policy.hard_action.value})."
        summary = f"Budget {policy.id} for {member} is exhausted"
        if spent < limit:
            # Not spent yet: a reservation's worst case did not fit. Said so, not "exhausted".
            summary = f"Budget {policy.id} for {member} refused a request (worst case over limit)"
            reason = (
                f"A request was refused: with the requests in flight it would have passed the "
                f"limit. {used} in {ends}; requests get its hard action "
                f"({policy.hard_action.value})."
            )
        found.append(
            AlertCondition(
                kind=AlertKind.BUDGET_EXHAUSTED,
                severity=Severity.CRITICAL,
                scope=scope,
                dedupe_key=f"{AlertKind.BUDGET_EXHAUSTED}|{base}",
                summary=summary,
                reason=reason,
                recommended_action="Approve an override, raise the limit, or wait for the window.",
            )
        )
    return found


def forecast_condition(
    policy: BudgetPolicy, member: str, window: Window, spent: Decimal, now: datetime
) -> AlertCondition | None:
    """``forecast_exhaustion`` when, at the pace of the window so far, the hard limit is reached
    before the window ends. Calendar windows only (a rolling window never ends), and only once
    a pace means something: at least 5% of the window elapsed and 10% of the limit spent."""
    if policy.interval.kind is IntervalKind.ROLLING:
        return None
    length = (window.end - window.start).total_seconds()
    elapsed = (now - window.start).total_seconds()
    if elapsed < 0.05 * length or spent < policy.hard_limit / 10:
        return None
    at = exhaustion_forecast(spent, policy.hard_limit, window, now)
    if at is None:
        return None
    scope = _budget_scope(policy, member)
    return AlertCondition(
        kind=AlertKind.FORECAST_EXHAUSTION,
        severity=Severity.WARNING,
        scope=scope,
        dedupe_key=f"{AlertKind.FORECAST_EXHAUSTION}|{policy.id}|{member}|{window.key}",
        summary=(
            f"Budget {policy.id} for {member} will run out around "
            f"{at.strftime('%Y-%m-%d %H:%M')} UTC, before its window ends"
        ),
        reason=(
            f"{format_amount(spent)} of {format_amount(policy.hard_limit)} "
            f"{policy.metric.value} spent since {window.start.isoformat()}; at this pace the "
            f"limit is reached at {at.isoformat(timespec='minutes')}, the window ends at "
            f"{window.end.isoformat()}."
        ),
        recommended_action=(
            f"Slow the spending under {scope}, route it to cheaper models, or raise the limit "
            "before requests are refused."
        ),
    )


def cost_spike_condition(
    scope: str, cost: Decimal, usual: Decimal | None, model: str, decision_id: str
) -> AlertCondition:
    """A single request's cost far above its scope's usual (``usual``: the trailing median,
    None without history)."""
    compared = (
        f", {format_amount((cost / usual).quantize(Decimal('0.1')))}× the usual "
        f"${format_amount(usual)}"
        if usual
        else ""
    )
    return AlertCondition(
        kind=AlertKind.COST_SPIKE,
        severity=Severity.WARNING,
        scope=scope,
        dedupe_key=f"{AlertKind.COST_SPIKE}|{scope}",
        summary=f"A request under {scope} cost ${format_amount(cost)}{compared}",
        reason=f"Request {decision_id} on {model} cost ${format_amount(cost)}{compared}.",
        recommended_action=(
            "Look at the request (spendgate decisions show ID): an agent loop or an oversized "
            "context is the usual cause; cap it with a budget or max_tokens."
        ),
    )


def unpriced_condition(model: str, provider: str) -> AlertCondition:
    return AlertCondition(
        kind=AlertKind.UNPRICED_MODEL,
        severity=Severity.WARNING,
        scope=f"model:{model}",
        dedupe_key=f"{AlertKind.UNPRICED_MODEL}|{model}",
        summary=f"Traffic to {model} has no price",
        reason=(
            f"Requests were served by {model} on {provider}, which has no price: their cost "
            "counts in USD budgets only as an estimate, or not at all."
        ),
        recommended_action=f"Set its price: spendgate pricing set {model} --input … --output …",
    )


def provider_condition(
    provider: str, state: str, circuit: str, reason: str | None
) -> AlertCondition:
    critical = state == "unhealthy" or circuit == "open"
    return AlertCondition(
        kind=AlertKind.PROVIDER_HEALTH,
        severity=Severity.CRITICAL if critical else Severity.WARNING,
        scope=f"provider:{provider}",
        dedupe_key=f"{AlertKind.PROVIDER_HEALTH}|{provider}",
        summary=f"Provider {provider} is {state} (circuit {circuit})",
        reason=reason or f"Its recent calls fail or are slow: it is {state}.",
        recommended_action=(
            f"Check {provider}'s status and credentials (spendgate models status); requests "
            "fail over to other models meanwhile where routing allows."
        ),
    )


def ledger_condition(ledger: str, *, admitting: bool) -> AlertCondition:
    """The shared ledger (named ``ledger``: its key prefix) cannot be reached, and requests
    are affected: ``admitting`` (``ledger_failure: open``) they pass without a budget check,
    else they are refused. Keyed by the ledger alone: one alert per outage, whichever replicas
    report it; its occurrences count the requests affected."""
    if admitting:
        summary = f"Budget ledger {ledger} is unreachable: requests are admitted unchecked"
        reason = (
            "The shared ledger (Redis) cannot be reached and ledger_failure is open: requests "
            "are admitted without a budget check (the occurrences count them). They are "
            "journaled and counted against their budgets once the ledger is back; until then "
            "no budget limits spending."
        )
    else:
        summary = f"Budget ledger {ledger} is unreachable: requests are refused"
        reason = (
            "The shared ledger (Redis) cannot be reached and ledger_failure is closed: "
            "requests are refused with 503 ledger_unavailable (the occurrences count them; "
            "clients may retry). No budget is overspent, but no request is served."
        )
    return AlertCondition(
        kind=AlertKind.LEDGER_UNAVAILABLE,
        severity=Severity.CRITICAL,
        scope=f"ledger:{ledger}",
        dedupe_key=f"{AlertKind.LEDGER_UNAVAILABLE}|{ledger}",
        summary=summary,
        reason=reason,
        recommended_action=(
            "Bring Redis (ledger_url) back; the gateways reconnect by themselves, seed an "
            "emptied Redis from the journal and resolve this alert. /healthz shows each "
            "replica's view (ledger.available)."
        ),
    )


def anomaly_condition(scope: str, spend: float, baseline: SpendBaseline) -> AlertCondition:
    return AlertCondition(
        kind=AlertKind.SPEND_RATE_ANOMALY,
        severity=Severity.WARNING,
        scope=scope,
        dedupe_key=f"{AlertKind.SPEND_RATE_ANOMALY}|{scope}",
        summary=f"{scope} spent ${spend:,.2f} in the last hour, far above its usual",
        reason=(
            f"Its usual hourly spend is ${baseline.mean:,.2f} "
            f"± ${math.sqrt(baseline.variance):,.2f} (over {baseline.hours} hours); the last "
            f"hour is {baseline.z_score(spend):,.1f} standard deviations above."
        ),
        recommended_action=(
            f"Find what changed under {scope} (spendgate usage --group-by model); set or lower "
            "a budget if it is not expected."
        ),
    )


def is_cost_spike(
    cost: Decimal, recent: Sequence[Decimal], absolute: Decimal, factor: Decimal
) -> bool:
    """One request's cost is a spike when it is above ``absolute`` **and** above ``factor``
    times the median of its scope's ``recent`` costs (no history: the absolute threshold
    alone). A cost at or below the usual one never is: a drop is not a spike."""
    if cost <= absolute:
        return False
    if not recent:
        return True
    return cost > factor * median(recent)


def exhaustion_forecast(
    consumed: Decimal, limit: Decimal, window: Window, now: datetime
) -> datetime | None:
    """When the hard limit is reached at the pace of the window so far, if that is before
    the window ends (None: it is not, nothing is spent yet, or it is reached already)."""
    elapsed = (now - window.start).total_seconds()
    if consumed <= 0 or consumed >= limit or elapsed <= 0 or now >= window.end:
        return None
    per_second = float(consumed) / elapsed
    at = now + timedelta(seconds=float(limit - consumed) / per_second)
    return at if at < window.end else None


@dataclass(frozen=True, slots=True)
class SpendBaseline:
    """A scope's usual hourly spend: exponentially weighted mean and variance (``alpha`` the
    weight of the newest hour). ``anomaly`` says whether an hour's spend is far above it: more
    than ``z`` standard deviations over the mean, and more than ``minimum`` (a few cents
    against a baseline of zero is not worth a page)."""

    mean: float = 0.0
    variance: float = 0.0
    hours: int = 0
    alpha: float = 0.1

    def observe(self, spend: float) -> SpendBaseline:
        if self.hours == 0:
            return SpendBaseline(spend, 0.0, 1, self.alpha)
        delta = spend - self.mean
        mean = self.mean + self.alpha * delta
        variance = (1 - self.alpha) * (self.variance + self.alpha * delta * delta)
        return SpendBaseline(mean, variance, self.hours + 1, self.alpha)

    def z_score(self, spend: float) -> float:
        deviation = math.sqrt(self.variance)
        if deviation == 0:
            return math.inf if spend > self.mean else 0.0
        return (spend - self.mean) / deviation

    def anomaly(
        self, spend: float, *, z: float = 4.0, minimum: float = 1.0, warmup: int = 6
    ) -> bool:
        """Needs ``warmup`` hours of history: a new scope has no "usual" yet."""
        return self.hours >= warmup and spend > minimum and self.z_score(spend) > z

    def calm(self, spend: float, *, z: float = 4.0) -> bool:
        """Whether an anomaly has ended: back under half the z-score that raised it (not
        just under it, so a spend hovering at the line does not open and close alerts)."""
        return self.z_score(spend) <= z / 2


@dataclass(frozen=True, slots=True)
class HealthHysteresis:
    """Whether a provider's health alert is raised: raised after ``open_after`` bad
    observations in a row, cleared only after ``clear_after`` good ones in a row, so a
    provider flapping between the two is reported once and stays reported until it is
    steadily healthy."""

    raised: bool = False
    streak: int = 0  # consecutive observations against the current state
    open_after: int = 2
    clear_after: int = 3

    def observe(self, healthy: bool) -> HealthHysteresis:
        against = healthy if self.raised else not healthy
        if not against:
            return HealthHysteresis(self.raised, 0, self.open_after, self.clear_after)
        streak = self.streak + 1
        needed = self.clear_after if self.raised else self.open_after
        if streak >= needed:
            return HealthHysteresis(not self.raised, 0, self.open_after, self.clear_after)
        return HealthHysteresis(self.raised, streak, self.open_after, self.clear_after)
