"""genai-prices' bundled snapshot mapped to catalog prices (the rules: ``spendgate.catalog``).

Imported only when the shipped index does not match the installed genai-prices, and to
write that index: importing genai-prices and mapping its snapshot is what the index avoids.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

from genai_prices import data, data_snapshot
from genai_prices import types as gp

from spendgate.catalog import CREATOR_PROVIDERS, Chosen, Period, Price
from spendgate.domain.pricing import Precision

__all__ = ["checked", "mapped"]

_RESELLER_RANK = len(CREATOR_PROVIDERS)

_ZERO = Decimal(0)
_THOUSAND = Decimal(1000)

# Price keys whose presence without ``output_mtok`` means output is billed in a unit a
# ``PricingRecord`` cannot express (audio, images, ...): such a price is skipped rather than
# turned into a wrong $0 output price. Without any of them (embeddings) output costs nothing.
_OTHER_OUTPUT_KEYS = (
    "output_audio_mtok",
    "output_image_mtok",
    "output_video_mtok",
    "output_reasoning_mtok",
    "output_citation_mtok",
)


def mapped() -> Chosen:
    """The mapping of genai-prices' bundled snapshot (see ``spendgate.catalog``)."""
    chosen: dict[str, tuple[tuple[int, int, int, int], str, tuple[Period, ...]]] = {}
    for provider_index, provider in enumerate(data_snapshot.get_snapshot().providers):
        rank = _provider_rank(provider.id)
        for model_index, model in enumerate(provider.models):
            periods: tuple[Period, ...] | None = None
            for alias_rank, model_id in enumerate(_model_ids(model)):
                # Lower sorts first: creator provider, then a model's own id over another
                # model's alias, then the snapshot's order.
                order = (rank, min(alias_rank, 1), provider_index, model_index)
                current = chosen.get(model_id)
                if current is not None and current[0] <= order:
                    continue
                if periods is None:
                    periods = _periods(model)
                if periods:
                    chosen[model_id] = (order, provider.id, periods)
    return {model_id: (provider, periods) for model_id, (_, provider, periods) in chosen.items()}


# The curators note when they last checked a price ("Checked 2026-10-15", "as of ...").
_CHECKED_RE = re.compile(
    r"\b(?:checked|as of|verified|updated|retrieved|accessed)\D{0,20}(\d{4}-\d{2}-\d{2})",
    re.IGNORECASE,
)


def checked() -> datetime:
    """The newest check date the curators noted; failing that, the data file's mtime."""
    newest: date | None = None
    for provider in data_snapshot.get_snapshot().providers:
        texts = [provider.price_comments or ""]
        texts.extend(model.price_comments or "" for model in provider.models)
        for text in texts:
            for match in _CHECKED_RE.finditer(text):
                try:
                    found = date.fromisoformat(match.group(1))
                except ValueError:
                    continue
                if newest is None or found > newest:
                    newest = found
    if newest is not None:
        return datetime.combine(newest, time(), UTC)
    return datetime.fromtimestamp(Path(data.__file__).stat().st_mtime, UTC)


# -- mapping one model ------------------------------------------------------------------


def _provider_rank(provider_id: str) -> int:
    try:
        return CREATOR_PROVIDERS.index(provider_id)
    except ValueError:
        return _RESELLER_RANK


def _model_ids(model: gp.ModelInfo) -> Iterator[str]:
    """The model's id, then its exact-equals aliases (through ``or`` clauses only)."""

    seen = {model.id}
    yield model.id
    pending: list[object] = [model.match]
    while pending:
        clause = pending.pop(0)
        if isinstance(clause, gp.ClauseEquals) and clause.equals not in seen:
            seen.add(clause.equals)
            yield clause.equals
        elif isinstance(clause, gp.ClauseOr):
            pending.extend(clause.or_)


def _periods(model: gp.ModelInfo) -> tuple[Period, ...]:
    """The model's standard price over time, as consecutive date periods."""
    if isinstance(model.prices, gp.ModelPrice):
        price = _price(model.prices)
        return () if price is None else (Period(None, None, price),)
    entries = model.prices
    if not entries:
        return ()
    starts = sorted(
        {
            e.constraint.start_date
            for e in entries
            if isinstance(e.constraint, gp.StartDateConstraint)
        }
    )
    bounds: list[date | None] = [None, *starts]
    periods: list[Period] = []
    for index, start in enumerate(bounds):
        end = bounds[index + 1] if index + 1 < len(bounds) else None
        price = _price_in_period(entries, start)
        if price is None:
            continue
        previous = periods[-1] if periods else None
        if previous is not None and previous.end == start and previous.price == price:
            periods[-1] = Period(previous.start, end, price)  # same price: one longer row
        else:
            periods.append(Period(start, end, price))
    return tuple(periods)


def _price_in_period(entries: Sequence[gp.ConditionalPrice], start: date | None) -> Price | None:
    """The price in force from ``start`` (``None``: before every start date) to the next date.

    genai-prices uses the last entry whose constraint holds (the first entry when none
    does); a time-of-day entry holds only part of each day, so it contributes to an upper
    bound instead of being selected.
    """
    selected: int | None = None
    for index, entry in enumerate(entries):
        constraint = entry.constraint
        if constraint is None or (
            isinstance(constraint, gp.StartDateConstraint)
            and start is not None
            and constraint.start_date <= start
        ):
            selected = index
    daytime_from = 0 if selected is None else selected + 1
    daytime = [
        entry
        for entry in entries[daytime_from:]
        if isinstance(entry.constraint, gp.TimeOfDateConstraint)
    ]
    base = _price(entries[selected if selected is not None else 0].prices)
    if base is None or not daytime:
        return base
    prices = [base, *(p for p in (_price(e.prices) for e in daytime) if p is not None)]
    return _upper_bound(prices)


def _upper_bound(prices: Sequence[Price]) -> Price:
    cached = [p.cached_input_per_mtok for p in prices]
    return Price(
        input_per_mtok=max(p.input_per_mtok for p in prices),
        output_per_mtok=max(p.output_per_mtok for p in prices),
        # Without its own cached price a row bills cached input at the input price: the
        # higher bound, so one missing cached price drops it for the combined row.
        cached_input_per_mtok=None if None in cached else max(c for c in cached if c is not None),
        per_request=max(p.per_request for p in prices),
        precision=Precision.ESTIMATE,
    )


def _price(prices: gp.ModelPrice) -> Price | None:
    """A ``ModelPrice`` as a token price; ``None`` when it is not priced per token."""
    input_price, tiered_input = _base(prices.__dict__.get("input_mtok"))
    if input_price is None:
        return None
    output_price, tiered_output = _base(prices.__dict__.get("output_mtok"))
    if output_price is None:
        if any(prices.__dict__.get(key) is not None for key in _OTHER_OUTPUT_KEYS):
            return None
        output_price = _ZERO
    cached, tiered_cached = _base(prices.__dict__.get("cache_read_mtok"))
    per_thousand, _ = _base(prices.__dict__.get("requests_kcount"))
    tiered = tiered_input or tiered_output or tiered_cached
    return Price(
        input_per_mtok=input_price,
        output_per_mtok=output_price,
        cached_input_per_mtok=cached,
        per_request=_ZERO if per_thousand is None else per_thousand / _THOUSAND,
        precision=Precision.ESTIMATE if tiered else Precision.EXACT,
    )


def _base(value: object) -> tuple[Decimal | None, bool]:
    """A price value's base rate, and whether it was tiered by context length."""
    if isinstance(value, gp.TieredPrices):
        return value.base, True
    if isinstance(value, Decimal):
        return value, False
    return None, False
