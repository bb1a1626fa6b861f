"""Prices, usage and cost. Money is ``Decimal`` everywhere; an unpriced model is never $0."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from spendgate.domain.models import Tier

__all__ = [
    "MTOK",
    "Precision",
    "PriceBook",
    "PriceSource",
    "PricingEstimate",
    "PricingRecord",
    "Usage",
    "cost_of",
    "tier_for_price",
]

MTOK = Decimal(1_000_000)
ZERO = Decimal(0)


class PriceSource(StrEnum):
    CATALOG = "catalog"
    CONFIG = "config"
    API = "api"

    @property
    def precedence(self) -> int:
        """Operator rows (api, then config) win over the built-in catalog."""
        return _SOURCE_PRECEDENCE[self]


_SOURCE_PRECEDENCE = {PriceSource.CATALOG: 0, PriceSource.CONFIG: 1, PriceSource.API: 2}


class Precision(StrEnum):
    EXACT = "exact"
    ESTIMATE = "estimate"


@dataclass(frozen=True, slots=True)
class PricingRecord:
    """USD per 1M tokens for one model, effective over ``[effective_from, effective_to)``."""

    model: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None = None
    per_request: Decimal = ZERO
    effective_from: datetime | None = None
    effective_to: datetime | None = None
    source: PriceSource = PriceSource.CATALOG
    precision: Precision = Precision.EXACT

    def effective_at(self, at: datetime) -> bool:
        if self.effective_from is not None and at < self.effective_from:
            return False
        return self.effective_to is None or at < self.effective_to

    @property
    def cached_rate(self) -> Decimal:
        """Cached input without its own price is billed at the normal input price, once."""
        if self.cached_input_per_mtok is None:
            return self.input_per_mtok
        return self.cached_input_per_mtok


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call; ``cached_input_tokens`` is the part of the input read from cache."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def cost_of(record: PricingRecord, usage: Usage) -> Decimal:
    """USD for ``usage`` at ``record``'s prices; cached tokens billed once, at the cached rate."""
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    uncached = usage.input_tokens - cached
    tokens_cost = (
        uncached * record.input_per_mtok
        + cached * record.cached_rate
        + usage.output_tokens * record.output_per_mtok
    )
    return tokens_cost / MTOK + record.per_request


@dataclass(frozen=True, slots=True)
class PricingEstimate:
    """Cost bounds of one request before it runs. ``None`` costs mean the model is unpriced."""

    model: str
    input_tokens_lower: int
    input_tokens_upper: int
    output_tokens_upper: int
    lower_usd: Decimal | None
    upper_usd: Decimal | None
    precision: Precision
    source: PriceSource | None
    unpriced: bool = False  # no price row: costs are None, or a tier-based estimate

    @property
    def priced(self) -> bool:
        return self.upper_usd is not None

    @property
    def tokens_upper(self) -> int:
        return self.input_tokens_upper + self.output_tokens_upper


class PriceBook:
    """Effective-dated prices per model. Immutable; build a new one when prices change.

    At time ``t`` a model is priced by the row of highest source precedence effective at
    ``t``; among rows of one source, the newest ``effective_from`` wins.
    """

    __slots__ = ("_rows",)

    def __init__(self, records: Iterable[PricingRecord]) -> None:
        rows: dict[str, list[PricingRecord]] = {}
        for record in records:
            rows.setdefault(record.model, []).append(record)
        for model_rows in rows.values():
            model_rows.sort(key=_row_order, reverse=True)
        self._rows: Mapping[str, tuple[PricingRecord, ...]] = {
            model: tuple(model_rows) for model, model_rows in rows.items()
        }

    def price_for(self, model: str, at: datetime) -> PricingRecord | None:
        for record in self._rows.get(model, ()):
            if record.effective_at(at):
                return record
        return None

    def rows(self, model: str | None = None) -> tuple[PricingRecord, ...]:
        if model is not None:
            return self._rows.get(model, ())
        return tuple(record for model_rows in self._rows.values() for record in model_rows)

    def models(self) -> frozenset[str]:
        return frozenset(self._rows)

    def with_records(self, records: Iterable[PricingRecord]) -> PriceBook:
        return PriceBook((*self.rows(), *records))


_EPOCH = datetime.min.replace(tzinfo=UTC)


def _row_order(record: PricingRecord) -> tuple[int, datetime]:
    return (record.source.precedence, record.effective_from or _EPOCH)


# Blended USD per 1M tokens (3 input : 1 output) at the boundaries between cost tiers.
_LOW_BELOW = Decimal("1.0")
_HIGH_FROM = Decimal("8.0")


def tier_for_price(record: PricingRecord) -> Tier:
    """Cost tier derived from a price, for models whose config sets none."""
    blended = (3 * record.input_per_mtok + record.output_per_mtok) / 4
    if blended < _LOW_BELOW:
        return Tier.LOW
    if blended >= _HIGH_FROM:
        return Tier.HIGH
    return Tier.MEDIUM
