"""The ``pricing`` section: USD per 1M tokens per model, checked for plausibility."""

from __future__ import annotations

from decimal import Decimal

from pydantic import field_validator, model_validator

from spendgate.config.errors import invalid
from spendgate.config.values import Id, Money, Spec, Timestamp

# Plausible USD per 1M tokens: below this a price was most likely entered per token
# (gpt-4o-mini input is 0.15 per 1M = 0.00000015 per token); above it, per 1K requests or a typo.
_MIN_MTOK_PRICE = Decimal("0.0001")
_MAX_MTOK_PRICE = Decimal(10000)


class PricingSpec(Spec):
    model: Id
    input_per_mtok: Money
    output_per_mtok: Money
    cached_input_per_mtok: Money | None = None
    per_request: Money = Decimal(0)
    effective_from: Timestamp | None = None
    effective_to: Timestamp | None = None

    @field_validator("input_per_mtok", "output_per_mtok", "cached_input_per_mtok")
    @classmethod
    def _per_mtok(cls, value: Decimal | None) -> Decimal | None:
        if value is None:
            return value
        if value < 0:
            raise invalid(f"a price cannot be negative (got {value})")
        if 0 < value < _MIN_MTOK_PRICE:
            per_mtok = (value * 1_000_000).normalize()
            raise invalid(
                f"{value:f} looks like a price per token; prices are USD per 1M tokens "
                f"(write {per_mtok:f} for {value:f} per token)"
            )
        if value > _MAX_MTOK_PRICE:
            raise invalid(
                f"{value} USD per 1M tokens is implausibly high; prices are USD per 1M tokens"
            )
        return value

    @field_validator("per_request")
    @classmethod
    def _fee(cls, value: Decimal) -> Decimal:
        if value < 0:
            raise invalid(f"a fee cannot be negative (got {value})")
        return value

    @model_validator(mode="after")
    def _dates(self) -> PricingSpec:
        if (
            self.effective_from is not None
            and self.effective_to is not None
            and self.effective_to <= self.effective_from
        ):
            raise invalid(
                f"effective_to {self.effective_to.isoformat()} is not after effective_from "
                f"{self.effective_from.isoformat()}",
                ("effective_to",),
            )
        return self
