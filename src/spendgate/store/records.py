"""Records the store returns that the domain does not define (yet).

``Approval`` and ``Alert`` mirror the approvals / alerts tables; if the domain grows its own
approval and alert records, these should become (or map to) those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from spendgate.domain.approvals import ApprovalScope, ApprovalState, Grant, policy_of_subject
from spendgate.domain.latency import LATENCY_EDGES_MS, percentile_at_most
from spendgate.domain.pricing import PricingRecord
from spendgate.domain.routing import RoutingAction, RoutingDecision, RoutingMode, TaskClass

__all__ = [
    "Alert",
    "AlertState",
    "Approval",
    "ApprovalEvent",
    "ApprovalScope",
    "ApprovalState",
    "DecisionFilter",
    "Delivery",
    "DeliveryState",
    "StoredDecision",
    "StoredPrice",
    "UsageTotals",
]


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """A journaled decision; ``decision`` carries usage, cost, latency and status once settled."""

    decision: RoutingDecision
    usage_estimated: bool | None
    settled_at: datetime | None


@dataclass(frozen=True, slots=True)
class DecisionFilter:
    """Filters of ``Journal.list_decisions``; ``None`` means any. Times are ``[since, until)``."""

    since: datetime | None = None
    until: datetime | None = None
    project: str | None = None
    principal: str | None = None
    api_key: str | None = None
    agent: str | None = None
    session: str | None = None
    model: str | None = None  # the actual model
    provider: str | None = None
    mode: RoutingMode | None = None
    task_class: TaskClass | None = None
    routing_action: RoutingAction | None = None
    status: str | None = None
    reason_code: str | None = None
    settled: bool | None = None


NO_LATENCIES = (0,) * (len(LATENCY_EDGES_MS) + 1)


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Sums over hourly rollup buckets, grouped by ``group`` (dimension name → value)."""

    group: dict[str, Any] = field(default_factory=dict)
    requests: int = 0
    settled: int = 0
    blocked: int = 0
    would_blocked: int = 0
    rerouted: int = 0
    unpriced: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    # Rerouted requests, on their actual usage: what the requested model would have cost
    # more (saved) or less (extra: escalations, failovers to dearer models).
    saved_usd: Decimal = Decimal(0)
    extra_usd: Decimal = Decimal(0)
    latency_ms_total: float = 0.0
    # Settled requests per latency bucket (``domain.latency``), when the query read them
    # (None: it did not); requests rolled up before the histogram existed are in none.
    latency_counts: tuple[int, ...] | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def avg_latency_ms(self) -> float | None:
        return self.latency_ms_total / self.settled if self.settled else None

    @property
    def timed(self) -> int:
        """How many settled requests the latency histogram counts."""
        return 0 if self.latency_counts is None else sum(self.latency_counts)

    def p95_latency_ms_at_most(self) -> float | None:
        counts = self.latency_counts
        return None if counts is None else percentile_at_most(counts, 95)


@dataclass(frozen=True, slots=True)
class StoredPrice:
    id: int
    record: PricingRecord
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Approval:
    id: str
    subject: str  # usage-budget:<policy_id>
    requester: str
    state: ApprovalState
    created_at: datetime
    expires_at: datetime
    scope: ApprovalScope | None = None
    session_id: str | None = None
    until: datetime | None = None
    extra_amount: Decimal | None = None
    approver: str | None = None
    reason: str | None = None  # the requester's
    decided_at: datetime | None = None
    consumed_at: datetime | None = None
    project: str | None = None  # the requester's project
    member: str = ""  # the policy member it is about
    window_key: str = ""
    window_end: datetime | None = None
    amount: Decimal | None = None  # asked for beyond the limit, in the policy's metric
    note: str | None = None  # the approver's note, or why it was denied
    context: dict[str, Any] | None = None  # the blocked request and the policy's state then

    @property
    def policy_id(self) -> str:
        return policy_of_subject(self.subject)

    def grant(self) -> Grant | None:
        """What it lets through while approved (None in any other state)."""
        if self.state is not ApprovalState.APPROVED or self.scope is None:
            return None
        return Grant(
            approval_id=self.id,
            policy_id=self.policy_id,
            requester=self.requester,
            member=self.member,
            scope=self.scope,
            session_id=self.session_id,
            until=self.until,
            extra=self.extra_amount,
        )


@dataclass(frozen=True, slots=True)
class ApprovalEvent:
    id: int
    approval_id: str
    at: datetime
    event: str
    actor: str | None
    detail: dict[str, Any] | None


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    alert_kind: str
    severity: str
    scope: str
    summary: str
    reason: str
    recommended_action: str
    dedupe_key: str
    occurrences: int
    first_seen: datetime
    last_seen: datetime
    state: AlertState
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    tenant: str | None = None  # "project:acme": who besides the admins may read it
    announced_at: datetime | None = None


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # given up: the receiver refused it (4xx), or it kept failing too long


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook delivery of one event (``id``: the delivery id, the same on every try)."""

    id: str
    webhook_id: str
    event: str
    subject_id: str
    body: bytes
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
