"""Validated sections to domain objects; ``Config``'s conversion methods delegate here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from spendgate.config.budgets import BudgetSpec, FiltersSpec
from spendgate.config.errors import ConfigError, ConfigProblem
from spendgate.config.keys import KeySpec
from spendgate.config.pricing import PricingSpec
from spendgate.config.providers import ModelSpec, ProviderSpec
from spendgate.config.routing import RoutingSpec
from spendgate.domain.budgets import BudgetFilters, BudgetPolicy
from spendgate.domain.keys import ApiKey
from spendgate.domain.models import Deployment, Model, Provider, Tier
from spendgate.domain.pricing import (
    Precision,
    PriceBook,
    PriceSource,
    PricingRecord,
    tier_for_price,
)
from spendgate.domain.routing import RoutingSettings
from spendgate.domain.scopes import GLOBAL_MEMBER, ScopeRef
from spendgate.domain.windows import Interval, IntervalKind


def providers(specs: Iterable[ProviderSpec]) -> tuple[Provider, ...]:
    return tuple(
        Provider(
            id=spec.id,
            kind=spec.kind,
            base_url=spec.base_url,
            api_key_env=spec.api_key_env,
            max_concurrency=spec.max_concurrency,
            timeout_s=spec.timeout_s,
            api_version=spec.api_version,
        )
        for spec in specs
    )


def models(specs: Iterable[ModelSpec], prices: PriceBook, at: datetime | None) -> tuple[Model, ...]:
    when = at or datetime.now(UTC)
    result: list[Model] = []
    for spec in specs:
        tier = spec.cost_tier
        if tier is None:
            record = next(
                filter(None, (prices.price_for(m, when) for m in (spec.id, *spec.upstream_ids()))),
                None,
            )
            tier = Tier.MEDIUM if record is None else tier_for_price(record)
        result.append(
            Model(
                id=spec.id,
                deployments=_deployments(spec),
                capabilities=frozenset(spec.capabilities),
                context_window=spec.context_window,
                max_output_tokens=spec.max_output_tokens,
                cost_tier=tier,
                latency_tier=spec.latency_tier,
                enabled=spec.enabled,
            )
        )
    return tuple(result)


def _deployments(spec: ModelSpec) -> tuple[Deployment, ...]:
    if spec.deployments is None:
        assert spec.provider is not None  # ModelSpec's validator: one form or the other
        return (Deployment(spec.provider, spec.upstream_id or spec.id),)
    return tuple(
        Deployment(d.provider, d.upstream_id or spec.id, d.weight) for d in spec.deployments
    )


def pricing_records(specs: Iterable[PricingSpec]) -> tuple[PricingRecord, ...]:
    return tuple(
        PricingRecord(
            model=spec.model,
            input_per_mtok=spec.input_per_mtok,
            output_per_mtok=spec.output_per_mtok,
            cached_input_per_mtok=spec.cached_input_per_mtok,
            per_request=spec.per_request,
            effective_from=spec.effective_from,
            effective_to=spec.effective_to,
            source=PriceSource.CONFIG,
            precision=Precision.EXACT,
        )
        for spec in specs
    )


def price_book(
    model_specs: Iterable[ModelSpec],
    pricing_specs: Iterable[PricingSpec],
    catalog: Sequence[PricingRecord],
) -> PriceBook:
    book = PriceBook((*catalog, *pricing_records(pricing_specs)))
    aliases: list[PricingRecord] = []
    for spec in model_specs:
        if book.rows(spec.id):
            continue
        # The first deployment whose upstream id has prices (an Azure deployment name
        # rarely does; the vendor's model name of another deployment may).
        for upstream in spec.upstream_ids():
            if upstream != spec.id and book.rows(upstream):
                aliases.extend(replace(record, model=spec.id) for record in book.rows(upstream))
                break
    return book.with_records(aliases) if aliases else book


def budget_policy(spec: BudgetSpec, timezone: str) -> BudgetPolicy:
    """The policy of one budget; ``timezone`` is the config's default for calendar windows."""
    interval = spec.interval
    filters = spec.filters or FiltersSpec()
    return BudgetPolicy(
        id=spec.id,
        scope=ScopeRef(spec.scope.kind, spec.scope.id or GLOBAL_MEMBER),
        metric=spec.metric,
        interval=Interval(
            kind=interval.kind,
            # A rolling window is absolute time; only calendar windows need a zone.
            timezone=(
                "UTC" if interval.kind is IntervalKind.ROLLING else interval.timezone or timezone
            ),
            duration=interval.duration,
        ),
        hard_limit=spec.hard_limit,
        soft_limit=spec.soft_limit,
        soft_action=spec.soft_action,
        hard_action=spec.hard_action,
        degrade_to=spec.degrade_to,
        alert_thresholds=tuple(spec.alert_thresholds),
        routing_mode_override=spec.routing_mode_override,
        mode=spec.mode,
        filters=BudgetFilters(
            models=_frozen(filters.models),
            providers=_frozen(filters.providers),
            task_classes=_frozen(
                None if filters.task_classes is None else [t.value for t in filters.task_classes]
            ),
        ),
        enabled=spec.enabled,
        source="config",
    )


def routing_settings(
    spec: RoutingSpec, model_specs: Sequence[ModelSpec], source: str
) -> RoutingSettings:
    default = spec.default_model
    if default is None:
        enabled = [m.id for m in model_specs if m.enabled] or [m.id for m in model_specs]
        if not enabled:
            raise ConfigError(
                source,
                [ConfigProblem("routing.default_model", "no model is configured to route to")],
            )
        default = enabled[0]
    return RoutingSettings(
        default_model=default,
        mode=spec.mode,
        smart_routing=spec.smart_routing,
        auxiliary_routing=spec.auxiliary_routing,
        failover=spec.failover,
        simple_below=spec.simple_below,
        complex_above=spec.complex_above,
    )


def api_keys(specs: Iterable[KeySpec]) -> tuple[ApiKey, ...]:
    return tuple(
        ApiKey(
            id=spec.id,
            principal=spec.principal,
            project=spec.project,
            permissions=frozenset(spec.permissions),
            models=_frozen(spec.models),
            key_env=spec.key_env,
        )
        for spec in specs
    )


def _frozen(values: Sequence[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)
