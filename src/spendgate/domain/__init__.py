"""The pure governance core: no I/O, no clock. Everything here is re-exported from
``spendgate`` as well."""

from spendgate.domain.budgets import (
    BudgetEvaluation,
    BudgetFilters,
    BudgetPolicy,
    BudgetStatus,
    CounterKey,
    CounterState,
    HardAction,
    Metric,
    OverrideGrant,
    SoftAction,
    UnpricedAction,
)
from spendgate.domain.complexity import ComplexityScore, ComplexityTerm, score_complexity
from spendgate.domain.models import Capability, Model, Provider, ProviderKind, Tier
from spendgate.domain.planner import (
    GovernanceState,
    ModelNotAllowedError,
    ModelNotFoundError,
    PlanCall,
    plan,
)
from spendgate.domain.pricing import (
    Precision,
    PriceBook,
    PriceSource,
    PricingEstimate,
    PricingRecord,
    Usage,
)
from spendgate.domain.requests import ChatRequest, Message, RequestError
from spendgate.domain.reservations import ReservationLine
from spendgate.domain.routing import (
    Candidate,
    HealthState,
    RoutingAction,
    RoutingDecision,
    RoutingMode,
    RoutingSettings,
    TaskClass,
)
from spendgate.domain.scopes import RequestScopes, ScopeKind, ScopeRef
from spendgate.domain.windows import Interval, IntervalKind, Window

__all__ = [
    "BudgetEvaluation",
    "BudgetFilters",
    "BudgetPolicy",
    "BudgetStatus",
    "Candidate",
    "Capability",
    "ChatRequest",
    "ComplexityScore",
    "ComplexityTerm",
    "CounterKey",
    "CounterState",
    "GovernanceState",
    "HardAction",
    "HealthState",
    "Interval",
    "IntervalKind",
    "Message",
    "Metric",
    "Model",
    "ModelNotAllowedError",
    "ModelNotFoundError",
    "OverrideGrant",
    "PlanCall",
    "Precision",
    "PriceBook",
    "PriceSource",
    "PricingEstimate",
    "PricingRecord",
    "Provider",
    "ProviderKind",
    "RequestError",
    "RequestScopes",
    "ReservationLine",
    "RoutingAction",
    "RoutingDecision",
    "RoutingMode",
    "RoutingSettings",
    "ScopeKind",
    "ScopeRef",
    "SoftAction",
    "TaskClass",
    "Tier",
    "UnpricedAction",
    "Usage",
    "Window",
    "plan",
    "score_complexity",
]
