"""JSON views of runtime records (budgets, prices, keys) as pydantic response models, the
translation of the records service's refusals into admin API errors, and the request-body
schemas documented for bodies the service validates itself (with the YAML's own specs).

Amounts are exact decimal strings; datetimes ISO 8601 with an offset; windows ``{start, end}``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from spendgate.admin.errors import AdminError, config_managed, not_found
from spendgate.admin.views import WindowView, money
from spendgate.domain.budgets import BudgetPolicy
from spendgate.domain.consumption import Consumption
from spendgate.records.budget_specs import format_duration
from spendgate.records.errors import (
    ConfigManagedError,
    RecordConflictError,
    RecordError,
    RecordForbiddenError,
    RecordInvalidError,
    RecordNotFoundError,
)
from spendgate.records.keys import KeyView, NewSecret
from spendgate.records.pricing import CatalogInfo, PriceRow, PriceSet
from spendgate.records.validation import exact_json

__all__ = [
    "BudgetList",
    "BudgetView",
    "ConsumptionView",
    "ExactNumbersRoute",
    "InvalidBudgetView",
    "KeyList",
    "KeyOut",
    "KeySecretOut",
    "PriceList",
    "PriceOut",
    "PriceSetOut",
    "body_schema",
    "budget_view",
    "key_view",
    "price_set_view",
    "price_view",
    "record_errors",
]


# --- bodies --------------------------------------------------------------------------------


class _ExactNumbersRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = exact_json(await self.body())
        return self._json


class ExactNumbersRoute(APIRoute):
    """Routes whose JSON bodies carry money: their numbers are parsed exactly (``Decimal``),
    so ``"hard_limit": 1.0000000000000001`` is stored as sent, like the string form."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(_ExactNumbersRequest(request.scope, request.receive))

        return exact


# --- errors ----------------------------------------------------------------------------------


@contextmanager
def record_errors(param: str | None = None) -> Iterator[None]:
    """Turn the records service's refusals into the admin API's answers; ``param`` names
    the offending field of a 422 when the body is not the record itself (a price sheet)."""
    try:
        yield
    except RecordNotFoundError as error:
        raise not_found(error.what, error.ident) from None
    except ConfigManagedError as error:
        raise config_managed(error.what, error.ident, error.source) from None
    except RecordConflictError as error:
        raise AdminError(409, "conflict", error.message) from None
    except RecordForbiddenError as error:
        raise AdminError(403, "forbidden", error.message) from None
    except RecordInvalidError as error:
        path = error.problems[0][0] if error.problems else ""
        if param is None:
            param = f"body.{path}" if path and not path.startswith("[") else f"body{path}"
        raise AdminError(422, "invalid_request", error.message, param=param) from None
    except RecordError as error:  # pragma: no cover - every subclass is handled above
        raise AdminError(400, "invalid_request", error.message) from None


# --- budgets ---------------------------------------------------------------------------------


class ScopeOut(BaseModel):
    kind: str
    id: str


class FiltersOut(BaseModel):
    models: list[str] | None
    providers: list[str] | None
    task_classes: list[str] | None


class IntervalOut(BaseModel):
    kind: str
    timezone: str | None  # calendar windows
    duration: str | None  # rolling windows, e.g. "7d"


class ConsumptionView(BaseModel):
    """One member's use of the budget in its current window, in the budget's metric."""

    member: str
    window: WindowView
    settled: str
    reserved: str  # in-flight requests
    consumed: str  # settled + reserved
    remaining: str  # of the hard limit, never below 0
    percent: str  # of the hard limit, rounded down to 0.01


class BudgetView(BaseModel):
    id: str
    source: str  # "config" (read-only) or "api"
    enabled: bool
    scope: ScopeOut
    filters: FiltersOut
    metric: str
    interval: IntervalOut
    hard_limit: str
    soft_limit: str | None
    soft_action: str
    hard_action: str
    degrade_to: str | None
    alert_thresholds: list[str]
    routing_mode_override: str | None
    mode: str | None
    consumption: list[ConsumptionView]


class InvalidBudgetView(BaseModel):
    """A stored runtime budget that fails validation: not applied; delete it and create it
    again."""

    id: str
    source: str
    problem: str


class BudgetList(BaseModel):
    data: list[BudgetView]
    invalid: list[InvalidBudgetView] = []  # admins only


def _names(values: frozenset[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)


def consumption_view(used: Consumption) -> ConsumptionView:
    return ConsumptionView(
        member=used.member,
        window=WindowView.of(used.window),
        settled=money(used.settled) or "0",
        reserved=money(used.reserved) or "0",
        consumed=money(used.consumed) or "0",
        remaining=money(used.remaining) or "0",
        percent=money(used.percent) or "0",
    )


def budget_view(policy: BudgetPolicy, used: list[Consumption]) -> BudgetView:
    interval = policy.interval
    return BudgetView(
        id=policy.id,
        source=policy.source,
        enabled=policy.enabled,
        scope=ScopeOut(kind=policy.scope.kind.value, id=policy.scope.id),
        filters=FiltersOut(
            models=_names(policy.filters.models),
            providers=_names(policy.filters.providers),
            task_classes=_names(policy.filters.task_classes),
        ),
        metric=policy.metric.value,
        interval=IntervalOut(
            kind=interval.kind.value,
            timezone=None if interval.duration is not None else interval.timezone,
            duration=None if interval.duration is None else format_duration(interval.duration),
        ),
        hard_limit=money(policy.hard_limit) or "0",
        soft_limit=money(policy.soft_limit),
        soft_action=policy.soft_action.value,
        hard_action=policy.hard_action.value,
        degrade_to=policy.degrade_to,
        alert_thresholds=[money(t) or "0" for t in policy.alert_thresholds],
        routing_mode_override=policy.routing_mode_override,
        mode=policy.mode,
        consumption=[consumption_view(item) for item in used],
    )


# --- pricing ---------------------------------------------------------------------------------


class PriceOut(BaseModel):
    id: str | None  # "api-<n>" (deletable), "config-<i>" (the YAML's pricing[i]); catalog: null
    model: str
    input_per_mtok: str  # USD per 1M tokens
    output_per_mtok: str
    cached_input_per_mtok: str | None  # null: cached input billed at the input price
    per_request: str
    effective_from: datetime | None
    effective_to: datetime | None
    source: str  # catalog | config | api
    precision: str  # exact | estimate
    in_effect: bool  # the row pricing this model now


class PriceSetOut(PriceOut):
    """A price row just set. Price fields the request left out were kept from the row it
    overrides: ``kept`` names them, ``kept_from`` is that row (null when nothing was kept)."""

    kept: list[str]
    kept_from: PriceOut | None


class CatalogOut(BaseModel):
    package: str
    version: str
    checked_at: datetime
    age_days: int


class PriceList(BaseModel):
    data: list[PriceOut]
    catalog: CatalogOut


def price_view(row: PriceRow) -> PriceOut:
    record = row.record
    return PriceOut(
        id=row.id,
        model=record.model,
        input_per_mtok=money(record.input_per_mtok) or "0",
        output_per_mtok=money(record.output_per_mtok) or "0",
        cached_input_per_mtok=money(record.cached_input_per_mtok),
        per_request=money(record.per_request) or "0",
        effective_from=record.effective_from,
        effective_to=record.effective_to,
        source=record.source.value,
        precision=record.precision.value,
        in_effect=row.in_effect,
    )


def price_set_view(result: PriceSet) -> PriceSetOut:
    kept_from = result.kept_from
    return PriceSetOut(
        **price_view(result.row).model_dump(),
        kept=list(result.kept),
        kept_from=price_view(kept_from) if kept_from is not None else None,
    )


def catalog_view(info: CatalogInfo) -> CatalogOut:
    return CatalogOut(
        package=info.package, version=info.version, checked_at=info.checked_at,
        age_days=info.age_days,
    )  # fmt: skip


# --- keys ------------------------------------------------------------------------------------


class KeyOut(BaseModel):
    """A key, never its secret nor the secret's digest."""

    id: str
    source: str  # "config" (read-only; secret in an env var) or "api"
    principal: str | None
    project: str | None
    permissions: list[str]
    models: list[str] | None  # null: every model
    created_at: datetime | None
    rotated_at: datetime | None
    revoked_at: datetime | None
    active: bool  # false once revoked


class KeySecretOut(KeyOut):
    secret: str  # shown once: only its SHA-256 digest is stored


class KeyList(BaseModel):
    data: list[KeyOut]


def key_view(view: KeyView) -> KeyOut:
    key = view.key
    return KeyOut(
        id=key.id,
        source=view.source,
        principal=key.principal,
        project=key.project,
        permissions=sorted(key.permissions),
        models=_names(key.models),
        created_at=view.created_at,
        rotated_at=view.rotated_at,
        revoked_at=view.revoked_at,
        active=view.revoked_at is None,
    )


def key_secret_view(created: NewSecret) -> KeySecretOut:
    return KeySecretOut(**key_view(created.view).model_dump(), secret=created.secret)


# --- request bodies --------------------------------------------------------------------------


def body_schema(model: type[BaseModel], description: str) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body the route validates itself: the model's JSON
    schema with its ``$defs`` inlined (OpenAPI would not resolve them)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": inline(schema)}},
        }
    }
