"""Cost bounds of a request on a given model, before it runs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from spendgate.domain.budgets import UnpricedAction
from spendgate.domain.models import Model, Tier
from spendgate.domain.pricing import (
    Precision,
    PriceBook,
    PricingEstimate,
    PricingRecord,
    Usage,
    cost_of,
)
from spendgate.domain.tokens import TokenEstimate

__all__ = [
    "DEFAULT_CONTEXT_WINDOW",
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "TIER_REFERENCE_PRICES",
    "actual_cost",
    "effective_record",
    "estimate_cost",
    "output_ceiling",
    "worst_case_note",
]

# Output ceiling when neither the request (max_tokens) nor the model sets one.
DEFAULT_MAX_OUTPUT_TOKENS = 4096
# Input ceiling of a model with no configured context window, when the request holds input of
# unknown size: the largest context windows offered today.
DEFAULT_CONTEXT_WINDOW = 1_000_000

# Prices used for an unpriced model under `unpriced_action: estimate`, by its cost tier:
# roughly the going rate of each tier's well-known models, rounded up so estimates err high.
TIER_REFERENCE_PRICES = {
    Tier.LOW: PricingRecord("tier:low", Decimal("0.5"), Decimal("2"), precision=Precision.ESTIMATE),
    Tier.MEDIUM: PricingRecord(
        "tier:medium", Decimal("3"), Decimal("15"), precision=Precision.ESTIMATE
    ),
    Tier.HIGH: PricingRecord(
        "tier:high", Decimal("15"), Decimal("75"), precision=Precision.ESTIMATE
    ),
}


def output_ceiling(model: Model, max_tokens: int | None) -> int:
    """Upper bound of output tokens: the request's max_tokens, capped by the model's maximum."""
    ceiling = max_tokens or model.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS
    if model.max_output_tokens is not None:
        ceiling = min(ceiling, model.max_output_tokens)
    return ceiling


def estimate_cost(
    model: Model,
    tokens: TokenEstimate,
    max_tokens: int | None,
    prices: PriceBook,
    at: datetime,
    unpriced_action: UnpricedAction,
    choices: int = 1,
) -> PricingEstimate:
    """Lower bound: the input at its low estimate and no output. Upper: input high (up to the
    model's context window when some input's size is unknown) + max output for each of the
    ``choices`` completions asked for (OpenAI's ``n``)."""
    output_upper = output_ceiling(model, max_tokens) * choices
    input_upper = tokens.upper_within(model.context_window or DEFAULT_CONTEXT_WINDOW)
    return _priced(
        model,
        Usage(input_tokens=tokens.lower),
        Usage(input_tokens=input_upper, output_tokens=output_upper),
        prices,
        at,
        unpriced_action,
    )


def actual_cost(
    model: Model,
    usage: Usage,
    prices: PriceBook,
    at: datetime,
    unpriced_action: UnpricedAction,
) -> PricingEstimate:
    """The cost of a finished call, priced at the request's time (never at time zero)."""
    return _priced(model, usage, usage, prices, at, unpriced_action)


def effective_record(
    model: Model, prices: PriceBook, at: datetime, unpriced_action: UnpricedAction
) -> PricingRecord | None:
    """The row that prices ``model`` at ``at``: its own, else (``estimate``) its tier's."""
    record = prices.price_for(model.id, at)
    if record is None and unpriced_action is UnpricedAction.ESTIMATE:
        return TIER_REFERENCE_PRICES[model.cost_tier]
    return record


def _priced(
    model: Model,
    lower: Usage,
    upper: Usage,
    prices: PriceBook,
    at: datetime,
    unpriced_action: UnpricedAction,
) -> PricingEstimate:
    record = effective_record(model, prices, at, unpriced_action)
    unpriced = record is None or record is TIER_REFERENCE_PRICES[model.cost_tier]
    return PricingEstimate(
        model=model.id,
        input_tokens_lower=lower.input_tokens,
        input_tokens_upper=upper.input_tokens,
        output_tokens_upper=upper.output_tokens,
        lower_usd=None if record is None else cost_of(record, lower),
        upper_usd=None if record is None else cost_of(record, upper),
        precision=Precision.ESTIMATE if record is None or unpriced else record.precision,
        source=None if record is None or unpriced else record.source,
        unpriced=unpriced,
    )


def worst_case_note(estimate: PricingEstimate, max_tokens: int | None, choices: int = 1) -> str:
    """Why a refused request counted as much as it did, and how to ask for less: a budget
    reserves a request's worst case, whose output part is ``max_tokens`` or, without it, the
    model's whole maximum output (per choice, when ``n`` asks for several)."""
    if not choices:  # embeddings: input only
        return (
            f"The amount is this request's worst case: up to {estimate.input_tokens_upper:,} "
            "input tokens (it generates no output)."
        )
    bound = (
        f"max_tokens {max_tokens:,}"
        if max_tokens is not None
        else f"{estimate.model}'s maximum output, as max_tokens is not set"
    )
    if choices > 1:
        bound += f", × {choices} choices"
    advice = (
        "Set max_tokens to the output you need to reserve less."
        if max_tokens is None
        else "A lower max_tokens reserves less."
    )
    return (
        f"The amount is this request's worst case: up to {estimate.input_tokens_upper:,} input "
        f"+ {estimate.output_tokens_upper:,} output tokens ({bound}). {advice}"
    )
