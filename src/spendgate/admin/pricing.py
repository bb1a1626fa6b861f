"""Admin API: pricing (``/api/v1/pricing``).

Lists the price rows in force (bundled catalog, config file, runtime overrides) with the
catalog's version and age; sets and deletes runtime overrides (source ``api``, validated like
the YAML's ``pricing`` entries, including the per-token vs per-1M plausibility check); imports
a CSV or JSON price sheet all or nothing. Any authenticated key may read prices.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from spendgate.admin.auth import Viewer
from spendgate.admin.context import AdminContext
from spendgate.admin.deps import get_context, get_viewer, require_admin
from spendgate.admin.records_views import (
    ExactNumbersRoute,
    PriceList,
    PriceOut,
    PriceSetOut,
    body_schema,
    catalog_view,
    price_set_view,
    price_view,
    record_errors,
)
from spendgate.config import PricingSpec
from spendgate.records.pricing import catalog_info

__all__ = ["router"]

router = APIRouter(prefix="/pricing", tags=["pricing"], route_class=ExactNumbersRoute)

Context = Annotated[AdminContext, Depends(get_context)]
Reader = Annotated[Viewer, Depends(get_viewer)]
Admin = Annotated[Viewer, Depends(require_admin)]

# A price sheet larger than this is not a price sheet (the catalog itself is ~2 MB of JSON).
_MAX_SHEET = 5_000_000


class PriceImport(BaseModel):
    format: Literal["csv", "json"]
    content: str = Field(
        max_length=_MAX_SHEET,
        description="CSV with a header row naming the columns (model, input_per_mtok, "
        "output_per_mtok, cached_input_per_mtok, per_request, effective_from, effective_to), "
        'or a JSON list of rows (or {"pricing": [...]}), like the config\'s pricing section.',
    )


class ImportResult(BaseModel):
    data: list[PriceOut]
    imported: int


@router.get("", response_model=PriceList, summary="List price rows and the catalog's age")
def list_prices(
    ctx: Context,
    _viewer: Reader,
    model: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="Only this model's rows."),
    ] = None,
    all_models: Annotated[
        bool,
        Query(
            alias="all",
            description="Every model the catalog prices (default: configured models and "
            "overridden ones).",
        ),
    ] = False,
    search: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="Model ids containing this (any case)."),
    ] = None,
    provider: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Models a configured provider of this id serves, or that the "
            "catalog lists under this provider (openai, anthropic, …).",
        ),
    ] = None,
) -> PriceList:
    rows = ctx.records.pricing.rows(model, every_model=all_models, search=search, provider=provider)
    return PriceList(data=[price_view(row) for row in rows], catalog=catalog_view(catalog_info()))


@router.post(
    "",
    response_model=PriceSetOut,
    status_code=201,
    summary="Set a price override",
    openapi_extra=body_schema(
        PricingSpec,
        "A price row, exactly like an entry of the config file's `pricing` section "
        "(USD per 1M tokens). Price fields left out are kept from the row it overrides "
        "(the answer's `kept` and `kept_from` say which, and from where).",
    ),
)
def set_price(
    ctx: Context, viewer: Admin, document: Annotated[dict[str, Any], Body()]
) -> PriceSetOut:
    with record_errors():
        result = ctx.records.pricing.set(document, actor=viewer.actor)
    return price_set_view(result)


@router.post(
    "/import",
    response_model=ImportResult,
    status_code=201,
    summary="Import a CSV or JSON price sheet (all rows or none)",
)
def import_prices(ctx: Context, viewer: Admin, sheet: PriceImport) -> ImportResult:
    # The message names the row and field; the param is the sheet itself.
    with record_errors(param="body.content"):
        rows = ctx.records.pricing.import_sheet(sheet.format, sheet.content, actor=viewer.actor)
    return ImportResult(data=[price_view(row) for row in rows], imported=len(rows))


@router.delete(
    "/{price_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a price override (api rows only)",
)
def delete_price(
    ctx: Context,
    viewer: Admin,
    price_id: Annotated[str, Path(min_length=1, max_length=64, description="e.g. api-3")],
) -> Response:
    with record_errors():
        ctx.records.pricing.delete(price_id, actor=viewer.actor)
    return Response(status_code=204)
