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

from spendgate.domain.budgets import BudgetPolicy, format_amount
from spendgate.domain.windows import Window

__all__ = [
    "AlertCondition",
    "AlertKind",
    "HealthHysteresis",
    "Severity",
    "SpendBaseline",
    "budget_conditions",
    "exhaustion_forecast",
    "is_cost_spike",
]


class AlertKind(StrEnum):
    BUDGET_THRESHOLD = "budget_threshold"
    BUDGET_EXHAUSTED = "budget_exhausted"
    COST_SPIKE = "cost_spike"
    SPEND_RATE_ANOMALY = "spend_rate_anomaly"
    FORECAST_EXHAUSTION = "forecast_exhaustion"
    PROVIDER_HEALTH = "provider_health"
    UNPRICED_MODEL = "unpriced_model"


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


def budget_conditions(
    policy: BudgetPolicy, member: str, window: Window, consumed: Decimal
) -> list[AlertCondition]:
    """The thresholds of ``policy`` that ``consumed`` (settled + reserved) has crossed in
    ``window``, one condition each (keyed by member, window and threshold: announced once per
    window), and ``budget_exhausted`` once the hard limit is reached."""
    scope = f"{policy.scope.kind.value}:{member}"
    base = f"{policy.id}|{member}|{window.key}"
    limit = policy.hard_limit
    used = f"{format_amount(consumed)} of {format_amount(limit)} {policy.metric.value}"
    found: list[AlertCondition] = []
    for fraction, amount in sorted(policy.threshold_amounts):
        if consumed < amount:
            break
        percent = format_amount(fraction * 100)
        found.append(
            AlertCondition(
                kind=AlertKind.BUDGET_THRESHOLD,
                severity=Severity.CRITICAL if fraction >= Decimal("0.95") else Severity.WARNING,
                scope=scope,
                dedupe_key=f"{AlertKind.BUDGET_THRESHOLD}|{base}|{fraction}",
                summary=f"Budget {policy.id} for {member} passed {percent}% of its limit",
                reason=f"{used} used in the window ending {window.end.isoformat()}.",
                recommended_action=(
                    f"Check who is spending under {scope}; raise the limit of {policy.id} or "
                    "route to cheaper models if this is expected."
                ),
            )
        )
    if consumed >= limit:
        found.append(
            AlertCondition(
                kind=AlertKind.BUDGET_EXHAUSTED,
                severity=Severity.CRITICAL,
                scope=scope,
                dedupe_key=f"{AlertKind.BUDGET_EXHAUSTED}|{base}",
                summary=f"Budget {policy.id} for {member} is exhausted",
                reason=(
                    f"{used} used; requests now get its hard action "
                    f"({policy.hard_action.value}) until {window.end.isoformat()}."
                ),
                recommended_action="Approve an override, raise the limit, or wait for the window.",
            )
        )
    return found


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
