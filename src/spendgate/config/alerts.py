"""The ``alerts`` section: where alerts go and what counts as a cost spike."""

from __future__ import annotations

from decimal import Decimal

from pydantic import field_validator

from spendgate.config.errors import invalid
from spendgate.config.values import Money, Spec, Url


class AlertsSpec(Spec):
    webhook_url: Url | None = None  # Slack-compatible JSON webhook
    cost_spike_usd: Money = Decimal("0.50")

    @field_validator("cost_spike_usd")
    @classmethod
    def _spike(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise invalid(f"must be greater than 0 (got {value})")
        return value
