"""Admin API: models — ``GET /models/status`` (providers, routing switches, health and circuit
per provider), ``GET /models`` (configured models with capabilities, tiers and prices; with
``?discovered=true`` merged with what discovery found), ``POST /models/test-connection`` and
``POST /models/discover`` (admin only; see ``discovery``).

Credentials never appear: a provider shows the *name* of its credential variable and whether
it is set; base URLs are shown without user-info or query string.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from spendgate.admin.auth import Viewer
from spendgate.admin.context import AdminContext
from spendgate.admin.deps import get_context, get_viewer, require_admin
from spendgate.admin.discovery import DiscoveredModel, ProbeResult, probe_all
from spendgate.admin.errors import AdminError
from spendgate.admin.views import money
from spendgate.domain.health import HealthSnapshot
from spendgate.domain.models import Model
from spendgate.urls import public_url

__all__ = ["router"]

router = APIRouter(tags=["models"])


# -- views -----------------------------------------------------------------------------------


class ProviderHealthView(BaseModel):
    state: str  # healthy | degraded | unhealthy
    circuit: str  # closed | open | half_open
    error_rate: float
    calls: float  # decayed number of recent calls
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    consecutive_failures: int
    reason_code: str | None
    reason: str | None
    last_failure: str | None
    opened_at: datetime | None
    retry_at: datetime | None  # until when the circuit stays open
    retry_in_s: float | None


class ProviderStatus(BaseModel):
    id: str
    kind: str
    base_url: str | None
    credential_env: str | None  # the variable's name, never its value
    credential_present: bool | None  # None: the provider needs no credential
    problem: str | None
    max_concurrency: int
    timeout_s: float
    models: list[str]
    health: ProviderHealthView


class DeploymentView(BaseModel):
    """One provider serving a model: its share of the model's traffic and its health."""

    provider: str
    upstream_id: str  # the id the provider knows the model by (an Azure deployment name)
    weight: int
    health: str  # its provider's: healthy | degraded | unhealthy (skipped while unhealthy)
    circuit: str  # closed | open | half_open


class ModelDeployments(BaseModel):
    id: str
    deployments: list[DeploymentView]


class ModelsStatus(BaseModel):
    default_model: str
    routing_mode: str
    smart_routing: bool
    auxiliary_routing: bool
    failover: bool
    started_at: datetime
    providers: list[ProviderStatus]
    models: list[ModelDeployments]  # each model's deployments, with their health


class PriceView(BaseModel):
    input_per_mtok: str
    output_per_mtok: str
    cached_input_per_mtok: str | None
    per_request: str
    source: str  # catalog | config | api
    precision: str  # exact | estimate
    effective_from: datetime | None
    effective_to: datetime | None


class ModelView(BaseModel):
    id: str
    provider: str
    configured: bool
    enabled: bool
    upstream_id: str | None
    capabilities: list[str]
    context_window: int | None
    max_output_tokens: int | None
    cost_tier: str | None
    latency_tier: str | None
    unpriced: bool
    price: PriceView | None
    discovered: bool | None  # None: discovery not asked for (or never run for its provider)
    # Where the model is served; ``provider`` / ``upstream_id`` are the first one's.
    deployments: list[DeploymentView]


class ModelList(BaseModel):
    data: list[ModelView]
    discovered_at: datetime | None  # when discovery last ran (``?discovered=true`` only)


class DiscoveredModelView(BaseModel):
    id: str
    display_name: str | None
    owned_by: str | None
    configured: bool


class ConnectionTest(BaseModel):
    provider: str
    kind: str
    url: str
    ok: bool
    status_code: int | None
    credential_accepted: bool | None
    latency_ms: float | None
    error: str | None
    model_count: int
    models: list[DiscoveredModelView]
    tested_at: datetime


class ConnectionTests(BaseModel):
    data: list[ConnectionTest]
    ok: bool  # every tested provider answered with its models


# -- helpers ---------------------------------------------------------------------------------


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _health(snapshot: HealthSnapshot | None) -> ProviderHealthView:
    if snapshot is None:
        return ProviderHealthView(
            state="healthy",
            circuit="closed",
            error_rate=0.0,
            calls=0.0,
            p50_latency_ms=None,
            p95_latency_ms=None,
            consecutive_failures=0,
            reason_code=None,
            reason=None,
            last_failure=None,
            opened_at=None,
            retry_at=None,
            retry_in_s=None,
        )
    return ProviderHealthView(
        state=snapshot.state.value,
        circuit=snapshot.circuit.value,
        error_rate=round(snapshot.error_rate, 4),
        calls=round(snapshot.calls, 2),
        p50_latency_ms=_ms(snapshot.p50_latency_s),
        p95_latency_ms=_ms(snapshot.p95_latency_s),
        consecutive_failures=snapshot.consecutive_failures,
        reason_code=snapshot.reason_code,
        reason=snapshot.reason,
        last_failure=snapshot.last_failure,
        opened_at=snapshot.opened_at,
        retry_at=snapshot.retry_at,
        retry_in_s=None if snapshot.retry_in_s is None else round(snapshot.retry_in_s, 1),
    )


def _deployments(model: Model, snapshots: dict[str, HealthSnapshot] | None) -> list[DeploymentView]:
    views = []
    for deployment in model.deployments:
        health = _health((snapshots or {}).get(deployment.provider))
        views.append(
            DeploymentView(
                provider=deployment.provider,
                upstream_id=deployment.upstream_id or model.id,
                weight=deployment.weight,
                health=health.state,
                circuit=health.circuit,
            )
        )
    return views


def _snapshots(ctx: AdminContext) -> dict[str, HealthSnapshot]:
    now = time.monotonic(), datetime.now(UTC)
    return {s.provider: s for s in ctx.upstreams.health.snapshots(*now)}


def _configured(ctx: AdminContext) -> set[tuple[str, str]]:
    """(provider, upstream id) of every deployment of every configured model."""
    return {
        (d.provider, d.upstream_id or m.id)
        for m in ctx.governor.state.models.values()
        for d in m.deployments
    }


def _discoveries(request: Request) -> dict[str, ProbeResult]:
    """The last discovery per provider, kept in memory for ``GET /models?discovered=true``."""
    state = request.app.state
    found: dict[str, ProbeResult] | None = getattr(state, "discovered", None)
    if found is None:
        found = state.discovered = {}
    return found


def _model_view(
    ctx: AdminContext, model: Model, now: datetime, snapshots: dict[str, HealthSnapshot]
) -> ModelView:
    record = ctx.governor.state.prices.price_for(model.id, now)
    price = (
        None
        if record is None
        else PriceView(
            input_per_mtok=money(record.input_per_mtok) or "0",
            output_per_mtok=money(record.output_per_mtok) or "0",
            cached_input_per_mtok=money(record.cached_input_per_mtok),
            per_request=money(record.per_request) or "0",
            source=record.source.value,
            precision=record.precision.value,
            effective_from=record.effective_from,
            effective_to=record.effective_to,
        )
    )
    return ModelView(
        id=model.id,
        provider=model.provider,
        configured=True,
        enabled=model.enabled,
        upstream_id=model.upstream_id or None,
        capabilities=sorted(c.value for c in model.capabilities),
        context_window=model.context_window,
        max_output_tokens=model.max_output_tokens,
        cost_tier=model.cost_tier.value,
        latency_tier=model.latency_tier.value,
        unpriced=record is None,
        price=price,
        discovered=None,
        deployments=_deployments(model, snapshots),
    )


def _tests(ctx: AdminContext, results: list[ProbeResult]) -> ConnectionTests:
    configured = _configured(ctx)
    data = [
        ConnectionTest(
            provider=r.provider,
            kind=r.kind,
            url=r.url,
            ok=r.ok,
            status_code=r.status_code,
            credential_accepted=r.credential_accepted,
            latency_ms=r.latency_ms,
            error=r.error,
            model_count=len(r.models),
            models=[
                DiscoveredModelView(
                    id=m.id,
                    display_name=m.display_name,
                    owned_by=m.owned_by,
                    configured=(r.provider, m.id) in configured,
                )
                for m in r.models
            ],
            tested_at=r.tested_at,
        )
        for r in results
    ]
    return ConnectionTests(data=data, ok=all(test.ok for test in data))


async def _probe(ctx: AdminContext, provider: str | None) -> list[ProbeResult]:
    if provider is not None and provider not in ctx.upstreams:
        raise AdminError(
            404,
            "not_found",
            f"No provider with id {provider!r} (configured: {', '.join(ctx.upstreams)}).",
            param="query.provider",
        )
    ids = [provider] if provider is not None else list(ctx.upstreams)
    return await probe_all([ctx.upstreams[pid] for pid in ids])


# -- endpoints -------------------------------------------------------------------------------


@router.get("/models/status", summary="Providers, routing switches, health and circuits")
def models_status(
    ctx: Annotated[AdminContext, Depends(get_context)],
    _viewer: Annotated[Viewer, Depends(get_viewer)],
) -> ModelsStatus:
    settings = ctx.governor.state.settings
    snapshots = _snapshots(ctx)
    models = sorted(ctx.governor.state.models.values(), key=lambda m: m.id)
    problems = ctx.upstreams.problems
    providers = [
        ProviderStatus(
            id=p.id,
            kind=p.kind.value,
            base_url=public_url(p.base_url),
            credential_env=p.api_key_env,
            credential_present=None if not p.api_key_env else p.id not in problems,
            problem=problems.get(p.id),
            max_concurrency=p.max_concurrency,
            timeout_s=p.timeout_s,
            models=[m.id for m in models if m.deployment_on(p.id) is not None],
            health=_health(snapshots.get(p.id)),
        )
        for p in ctx.config.providers()
    ]
    return ModelsStatus(
        default_model=settings.default_model,
        routing_mode=settings.mode.value,
        smart_routing=settings.smart_routing,
        auxiliary_routing=settings.auxiliary_routing,
        failover=settings.failover,
        started_at=ctx.started_at,
        providers=providers,
        models=[ModelDeployments(id=m.id, deployments=_deployments(m, snapshots)) for m in models],
    )


@router.get("/models", summary="Configured (and discovered) models with tiers and prices")
def list_models(
    request: Request,
    ctx: Annotated[AdminContext, Depends(get_context)],
    viewer: Annotated[Viewer, Depends(get_viewer)],
    discovered: Annotated[
        bool, Query(description="Merge the models the last discovery found.")
    ] = False,
) -> ModelList:
    now = datetime.now(UTC)
    allowed = viewer.key.models if viewer.key is not None and not viewer.is_admin else None
    snapshots = _snapshots(ctx)
    views = [
        _model_view(ctx, model, now, snapshots)
        for model in sorted(ctx.governor.state.models.values(), key=lambda m: (m.provider, m.id))
        if allowed is None or model.id in allowed
    ]
    if not discovered:
        return ModelList(data=views, discovered_at=None)
    found = _discoveries(request)
    listed: dict[str, set[str]] = {
        pid: {m.id for m in result.models} for pid, result in found.items() if result.ok
    }
    state_models = ctx.governor.state.models
    for view in views:
        ids = listed.get(view.provider)
        upstream_id = state_models[view.id].upstream_model if view.id in state_models else view.id
        view.discovered = None if ids is None else upstream_id in ids
    configured = _configured(ctx)
    extra: list[DiscoveredModel] = [
        m
        for result in found.values()
        if result.ok
        for m in result.models
        if (m.provider, m.id) not in configured
    ]
    if allowed is None:
        views += [
            ModelView(
                id=m.id,
                provider=m.provider,
                configured=False,
                enabled=False,
                upstream_id=None,
                capabilities=[],
                context_window=None,
                max_output_tokens=None,
                cost_tier=None,
                latency_tier=None,
                unpriced=ctx.governor.state.prices.price_for(m.id, now) is None,
                price=None,
                discovered=True,
                deployments=[],
            )
            for m in sorted(extra, key=lambda m: (m.provider, m.id))
        ]
    times = [result.tested_at for result in found.values()]
    return ModelList(data=views, discovered_at=max(times) if times else None)


@router.post(
    "/models/test-connection",
    summary="Check each provider's reachability, credential and models (admin)",
)
async def check_connections(
    ctx: Annotated[AdminContext, Depends(get_context)],
    _admin: Annotated[Viewer, Depends(require_admin)],
    provider: Annotated[str | None, Query(description="One provider id; default: all.")] = None,
) -> ConnectionTests:
    return _tests(ctx, await _probe(ctx, provider))


@router.post(
    "/models/discover",
    summary="Discover each provider's models and remember them (admin)",
)
async def discover(
    request: Request,
    ctx: Annotated[AdminContext, Depends(get_context)],
    _admin: Annotated[Viewer, Depends(require_admin)],
    provider: Annotated[str | None, Query(description="One provider id; default: all.")] = None,
) -> ConnectionTests:
    results = await _probe(ctx, provider)
    found = _discoveries(request)
    for result in results:
        found[result.provider] = result
    return _tests(ctx, results)
