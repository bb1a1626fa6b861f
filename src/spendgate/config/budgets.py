"""The ``budgets`` section: a limit on a metric, for a scope, over an interval."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)

from spendgate.config.errors import invalid, suggest
from spendgate.config.values import Duration, Id, Money, Spec, TimezoneName, non_empty
from spendgate.domain.budgets import (
    DEFAULT_ALERT_THRESHOLDS,
    HardAction,
    Metric,
    SoftAction,
)
from spendgate.domain.routing import RoutingMode, TaskClass
from spendgate.domain.scopes import EACH_MEMBER, GLOBAL_MEMBER, ScopeKind, split_member
from spendgate.domain.windows import IntervalKind, rolling_duration_problem


class ScopeSpec(Spec):
    kind: ScopeKind
    id: Id | None = None

    @model_validator(mode="after")
    def _member(self) -> ScopeSpec:
        if self.kind is ScopeKind.GLOBAL:
            if self.id not in (None, GLOBAL_MEMBER):
                raise invalid(
                    f"a global scope has one member, 'global'; omit id (got {self.id!r})",
                    ("id",),
                )
        elif self.id is None:
            raise invalid(
                f"a {self.kind.value} scope needs an id (a {self.kind.value} id, "
                "or '*' for each member separately)",
                ("id",),
            )
        elif (
            self.kind in (ScopeKind.AGENT, ScopeKind.SESSION)
            and self.id != EACH_MEMBER
            and split_member(self.id) is None
        ):
            # Clients choose agent and session ids: one alone would name that id in every
            # tenant at once, so a budget names the tenant too.
            raise invalid(
                f"{self.kind.value} ids belong to a tenant (the key's project, else its "
                f"principal, else the key): write project:<project>/{self.id}, "
                f"principal:<principal>/{self.id} or api_key:<key>/{self.id}, or '*'",
                ("id",),
            )
        return self


class FiltersSpec(Spec):
    models: list[Id] | None = None
    providers: list[Id] | None = None
    task_classes: list[TaskClass] | None = None

    @field_validator("models", "providers", "task_classes")
    @classmethod
    def _lists(cls, value: list[Any] | None, info: ValidationInfo) -> list[Any] | None:
        non_empty(info.field_name or "filter", value)
        return value


class IntervalSpec(Spec):
    kind: IntervalKind
    timezone: TimezoneName | None = None  # None: the config's top-level timezone
    duration: Duration | None = None  # rolling only

    @model_validator(mode="after")
    def _shape(self) -> IntervalSpec:
        if self.kind is IntervalKind.ROLLING:
            if self.duration is None:
                raise invalid(
                    "a rolling interval needs a duration such as 30m, 12h, 7d or 2w",
                    ("duration",),
                )
            if self.timezone is not None:
                raise invalid(
                    "a rolling interval is not tied to a timezone; remove it", ("timezone",)
                )
            problem = rolling_duration_problem(self.duration)
            if problem is not None:
                raise invalid(problem, ("duration",))
        elif self.duration is not None:
            raise invalid(
                f"only a rolling interval takes a duration ({self.kind.value} windows are "
                "calendar windows)",
                ("duration",),
            )
        return self


def _interval_input(value: object) -> object:
    """``interval: daily`` is short for ``interval: {kind: daily}``."""
    if not isinstance(value, str):
        return value
    kinds = [kind.value for kind in IntervalKind]
    if value not in kinds:
        raise invalid(
            f"unknown interval {value!r}{suggest(value, kinds)}; expected hourly, daily, "
            "weekly, monthly, or a mapping such as {kind: rolling, duration: 7d}"
        )
    return {"kind": value}


class BudgetSpec(Spec):
    id: Id
    scope: ScopeSpec
    filters: FiltersSpec | None = None
    metric: Metric
    interval: Annotated[IntervalSpec, BeforeValidator(_interval_input)]
    hard_limit: Money
    soft_limit: Money | None = None
    soft_action: SoftAction = SoftAction.ALERT
    hard_action: HardAction = HardAction.BLOCK
    degrade_to: Id | None = None  # None: routing picks the cheapest suitable model
    alert_thresholds: list[Money] = Field(default_factory=lambda: list(DEFAULT_ALERT_THRESHOLDS))
    routing_mode_override: RoutingMode | None = None
    mode: RoutingMode | None = None
    enabled: StrictBool = True

    @field_validator("hard_limit", "soft_limit")
    @classmethod
    def _limits(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        if value is None:
            return value
        if value <= 0:
            raise invalid(f"must be greater than 0 (got {value})")
        metric = info.data.get("metric")
        if metric in (Metric.TOKENS, Metric.REQUESTS) and value != value.to_integral_value():
            raise invalid(f"a {metric.value} limit must be a whole number (got {value})")
        hard = info.data.get("hard_limit")
        if info.field_name == "soft_limit" and hard is not None and value > hard:
            raise invalid(f"soft_limit {value} is above hard_limit {hard}")
        return value

    @field_validator("alert_thresholds")
    @classmethod
    def _thresholds(cls, value: list[Decimal]) -> list[Decimal]:
        for index, fraction in enumerate(value):
            if not 0 < fraction <= 1:
                raise invalid(f"{fraction} is not a fraction of the hard limit in (0, 1]", (index,))
            if index and fraction <= value[index - 1]:
                raise invalid(
                    f"thresholds must be sorted and distinct: {fraction} follows "
                    f"{value[index - 1]}",
                    (index,),
                )
        return value

    @model_validator(mode="after")
    def _actions(self) -> BudgetSpec:
        if self.soft_action is SoftAction.DEGRADE and self.soft_limit is None:
            raise invalid(
                "soft_action degrade never applies without a soft_limit", ("soft_action",)
            )
        return self
