"""Prices at runtime: operator overrides (source "api") on top of the config's rows and the
bundled catalog, set one at a time or imported from a CSV/JSON price sheet (all or nothing).

Rows are addressed by string ids: ``api-<n>`` for runtime rows (the database id),
``config-<i>`` for the config file's ``pricing[i]``; catalog rows have none. Only api rows can
be deleted; the others are read-only (edit the YAML, or override with a newer api row).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from spendgate.config.convert import pricing_records
from spendgate.domain.pricing import PriceSource, PricingRecord
from spendgate.gateway.body import JsonShapeError, check_json_shape
from spendgate.records.errors import (
    ConfigManagedError,
    RecordInvalidError,
    RecordNotFoundError,
)
from spendgate.records.live import LiveState
from spendgate.records.validation import exact_json, validate_prices
from spendgate.store.journal import Journal
from spendgate.store.records import StoredPrice

__all__ = ["CatalogInfo", "PriceRecords", "PriceRow", "PriceSet", "catalog_info"]

audit = logging.getLogger("spendgate.audit")

SheetFormat = Literal["csv", "json"]
_API_PREFIX = "api-"
_CONFIG_PREFIX = "config-"


@dataclass(frozen=True, slots=True)
class PriceRow:
    id: str | None
    record: PricingRecord
    in_effect: bool  # the row that prices this model now


@dataclass(frozen=True, slots=True)
class PriceSet:
    """A row just set, and the fields it kept from the row it overrides (``kept_from``)."""

    row: PriceRow
    kept: tuple[str, ...]
    kept_from: PriceRow | None


@dataclass(frozen=True, slots=True)
class CatalogInfo:
    package: str
    version: str
    checked_at: datetime  # when the bundled snapshot was last checked by its curators
    age_days: int


def catalog_info(now: datetime | None = None) -> CatalogInfo:
    from spendgate.catalog import catalog_timestamp, catalog_version

    checked = catalog_timestamp()
    age = ((now or datetime.now(UTC)) - checked).days
    return CatalogInfo("genai-prices", catalog_version(), checked, max(age, 0))


class PriceRecords:
    def __init__(self, live: LiveState, journal: Journal) -> None:
        self._live = live
        self._journal = journal

    # -- reading ---------------------------------------------------------------------------

    def rows(
        self,
        model: str | None = None,
        *,
        every_model: bool = False,
        search: str | None = None,
        provider: str | None = None,
        now: datetime | None = None,
    ) -> list[PriceRow]:
        """Price rows of ``model``; without one, of every configured model plus every
        override (``every_model``: the whole catalog too). Newest precedence first.
        ``search``: model ids containing it (any case); ``provider``: models a configured
        provider of that id serves, or that the catalog lists under that provider."""
        at = now or datetime.now(UTC)
        book = self._live.governor.state.prices
        if model is not None:
            models: Sequence[str] = [model]
        elif every_model:
            models = sorted(book.models())
        else:
            named = {*self._live.governor.state.models}
            named.update(record.model for record in self._live.config_prices)
            named.update(stored.record.model for stored in self._live.api_prices.values())
            models = sorted(named)
        if search is not None:
            needle = search.casefold()
            models = [name for name in models if needle in name.casefold()]
        if provider is not None:
            models = [name for name in models if provider in self._providers_of(name)]
        ids = self._ids()
        result: list[PriceRow] = []
        for name in models:
            current = book.price_for(name, at)
            for record in book.rows(name):
                result.append(PriceRow(ids.get(record), record, record is current))
        return result

    def _providers_of(self, model: str) -> set[str]:
        from spendgate.catalog import catalog_provider

        served = self._live.governor.state.models.get(model)
        found = {d.provider for d in served.deployments} if served is not None else set()
        listed = catalog_provider(model)
        if listed is not None:
            found.add(listed)
        return found

    def _ids(self) -> dict[PricingRecord, str]:
        ids = {
            record: f"{_CONFIG_PREFIX}{index}"
            for index, record in enumerate(self._live.config_prices)
        }
        ids.update(
            (stored.record, f"{_API_PREFIX}{row_id}")
            for row_id, stored in self._live.api_prices.items()
        )
        return ids

    # -- changing ----------------------------------------------------------------------------

    def set(self, document: object, *, actor: str) -> PriceSet:
        """Add an override row (source "api"); validated like a ``pricing`` entry. Price
        fields left out are kept from the row it overrides (the one pricing the model when
        the new row takes effect), so setting a new input price keeps the cached one."""
        kept: tuple[str, ...] = ()
        kept_from: PriceRow | None = None
        if isinstance(document, Mapping):
            document, kept, kept_from = self._keep_missing_fields(document)
        (spec,) = validate_prices(self._live.config, [document], indexed=False)
        (record,) = _api_records(pricing_records([spec]))
        (stored,) = self._store([record])
        audit.info(
            "price api-%s for %s set by %s (input %s, output %s per 1M)",
            stored.id, record.model, actor, record.input_per_mtok, record.output_per_mtok,
        )  # fmt: skip
        return PriceSet(self._row(stored), kept, kept_from)

    def _keep_missing_fields(
        self, document: Mapping[str, Any]
    ) -> tuple[Mapping[str, Any], tuple[str, ...], PriceRow | None]:
        missing = [field for field in _PRICE_FIELDS if document.get(field) is None]
        model = document.get("model")
        # No price at all is a mistake, not a copy of the current row: validation says so.
        if not missing or len(missing) == len(_PRICE_FIELDS) or not isinstance(model, str):
            return document, (), None
        at = _instant(document.get("effective_from")) or datetime.now(UTC)
        current = self._live.governor.state.prices.price_for(model, at)
        if current is None:
            return document, (), None  # nothing to keep: validation names what is missing
        values = {
            "input_per_mtok": current.input_per_mtok,
            "output_per_mtok": current.output_per_mtok,
            "cached_input_per_mtok": current.cached_input_per_mtok,
            "per_request": current.per_request,
        }
        kept = tuple(field for field in missing if values[field] is not None)
        filled = {**document, **{field: str(values[field]) for field in kept}}
        return filled, kept, PriceRow(self._ids().get(current), current, True)

    def import_sheet(
        self, sheet_format: SheetFormat, content: str, *, actor: str
    ) -> list[PriceRow]:
        """Every row of a price sheet, validated first, then stored in one transaction."""
        documents = _parse_sheet(sheet_format, content)
        try:
            specs = validate_prices(self._live.config, documents, indexed=True)
        except RecordInvalidError as error:
            if sheet_format == "csv":  # name CSV rows by their line in the file
                raise RecordInvalidError(
                    [(_csv_line(path), why) for path, why in error.problems]
                ) from None
            raise
        stored = self._store(_api_records(pricing_records(specs)))
        audit.info("price sheet of %d rows imported by %s", len(stored), actor)
        return [self._row(row) for row in stored]

    def delete(self, price_id: str, *, actor: str) -> None:
        live = self._live
        if price_id.startswith(_CONFIG_PREFIX) and price_id[len(_CONFIG_PREFIX) :].isdigit():
            index = int(price_id[len(_CONFIG_PREFIX) :])
            if index < len(live.config_prices):
                raise ConfigManagedError("price row", price_id, live.config.source)
        row_id = _api_row_id(price_id)
        with live.lock:
            if row_id is None or row_id not in live.api_prices:
                raise RecordNotFoundError("price row", price_id)
            self._journal.pricing.delete(row_id)
            stored = live.api_prices.pop(row_id)
            live.apply_prices()
        audit.info("price %s for %s deleted by %s", price_id, stored.record.model, actor)

    def _store(self, records: Sequence[PricingRecord]) -> list[StoredPrice]:
        live = self._live
        with live.lock:
            stored = self._journal.pricing.add_many(records)
            live.api_prices.update((row.id, row) for row in stored)
            live.apply_prices()
        return stored

    def _row(self, stored: StoredPrice) -> PriceRow:
        current = self._live.governor.state.prices.price_for(stored.record.model, datetime.now(UTC))
        return PriceRow(f"{_API_PREFIX}{stored.id}", stored.record, current == stored.record)


_PRICE_FIELDS = ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "per_request")


def _instant(value: object) -> datetime | None:
    """An ``effective_from`` as given (ISO date or date-time; naive is UTC), or None when it
    is absent or malformed (validation then reports it)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _api_records(records: Sequence[PricingRecord]) -> list[PricingRecord]:
    from dataclasses import replace

    return [replace(record, source=PriceSource.API) for record in records]


def _api_row_id(price_id: str) -> int | None:
    digits = price_id.removeprefix(_API_PREFIX)
    if price_id.startswith(_API_PREFIX) and digits.isdigit() and len(digits) < 19:
        return int(digits)
    return None


def _parse_sheet(sheet_format: SheetFormat, content: str) -> list[Any]:
    if sheet_format == "json":
        try:
            check_json_shape(content.encode())
            data = exact_json(content)
        except JsonShapeError as error:
            raise RecordInvalidError([("", str(error))]) from None
        except ValueError as error:
            raise RecordInvalidError([("", f"not valid JSON: {error}")]) from None
        if isinstance(data, dict) and set(data) == {"pricing"}:
            data = data["pricing"]  # a copy of the YAML section
        if not isinstance(data, list):
            raise RecordInvalidError(
                [("", 'expected a list of price rows (or {"pricing": [...]})')]
            )
        rows: list[Any] = data
    else:
        reader = csv.DictReader(io.StringIO(content))
        rows = []
        try:
            for record in reader:
                if None in record:  # more cells than the header names
                    raise RecordInvalidError(
                        [(f"line {reader.line_num}", "more cells than the header has columns")]
                    )
                rows.append(
                    {key: value for key, value in record.items() if value not in ("", None)}
                )
        except csv.Error as error:
            raise RecordInvalidError([(f"line {reader.line_num}", f"not CSV: {error}")]) from None
    if not rows:
        raise RecordInvalidError([("", "the price sheet has no rows")])
    return rows


def _csv_line(path: str) -> str:
    """``[3].input_per_mtok`` → ``line 5.input_per_mtok`` (line 1 is the header)."""
    if not path.startswith("["):
        return path
    index, _, rest = path[1:].partition("]")
    line = f"line {int(index) + 2}" if index.isdigit() else path
    return f"{line}{rest}"
