"""The ``alerts`` section: what counts as a spike, how often conditions are evaluated, how
long a repeated alert stays quiet, and where alerts and approval events are delivered."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Literal

from pydantic import Field, field_validator, model_validator

from spendgate.config.errors import invalid
from spendgate.config.values import Duration, EnvName, Id, Money, Spec, Url
from spendgate.domain.alerts import AlertKind, Severity

__all__ = ["AlertsSpec", "WebhookSpec"]

# What a webhook may subscribe to: alert kinds, and the approval events.
APPROVAL_EVENTS = ("approval.requested", "approval.decided")


class WebhookSpec(Spec):
    id: Id
    url: Url
    format: Literal["json", "slack"] = "json"
    # Alert kinds (and approval events) sent to it; None: all of them.
    kinds: list[str] | None = None
    min_severity: Severity = Severity.INFO
    # The environment variable holding the HMAC secret that signs each delivery.
    secret_env: EnvName | None = None

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        known = {kind.value for kind in AlertKind} | set(APPROVAL_EVENTS)
        unknown = [kind for kind in value if kind not in known]
        if unknown:
            raise invalid(f"unknown kind(s) {unknown}; known: {sorted(known)}")
        return value


class AlertsSpec(Spec):
    # Off: no detection, no deliveries (for teams whose monitoring reads /metrics instead).
    enabled: bool = True
    # A single request costing more than this, *and* spike_factor × its scope's median.
    cost_spike_usd: Money = Decimal("0.50")
    spike_factor: Money = Decimal(5)
    evaluate_every_seconds: float = Field(default=15, gt=0, le=3600)
    # A repeated condition counts up silently for this long before it is announced again.
    cooldown: Duration = timedelta(minutes=15)
    webhooks: list[WebhookSpec] = Field(default_factory=list)
    # Shorthand for one Slack-format webhook (id "default").
    webhook_url: Url | None = None
    # Linked from Slack messages when set (the console's address as people reach it).
    console_url: Url | None = None
    # Webhook delivery: one attempt's timeout; the first retry's delay, doubled on each failure
    # (timeouts, connection errors, 5xx) up to the maximum; a delivery still failing after
    # give_up_after is marked failed. A 4xx answer is final: the receiver refused the payload.
    delivery_timeout_seconds: float = Field(default=10, gt=0, le=300)
    retry_first_seconds: float = Field(default=10, gt=0, le=86400)
    retry_max_seconds: float = Field(default=3600, gt=0, le=86400)
    give_up_after: Duration = timedelta(hours=24)

    @field_validator("cost_spike_usd")
    @classmethod
    def _spike(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise invalid(f"must be greater than 0 (got {value})")
        return value

    @field_validator("spike_factor")
    @classmethod
    def _factor(cls, value: Decimal) -> Decimal:
        if value < 1:
            raise invalid(f"must be at least 1: a spike is a rise (got {value})")
        return value

    @model_validator(mode="after")
    def _unique_webhooks(self) -> AlertsSpec:
        ids = [hook.id for hook in self.all_webhooks()]
        duplicates = sorted({hook for hook in ids if ids.count(hook) > 1})
        if duplicates:
            raise invalid(f"webhook ids must be unique: {', '.join(duplicates)}")
        return self

    def all_webhooks(self) -> list[WebhookSpec]:
        """``webhooks``, plus the ``webhook_url`` shorthand as a Slack webhook."""
        if self.webhook_url is None:
            return list(self.webhooks)
        return [*self.webhooks, WebhookSpec(id="default", url=self.webhook_url, format="slack")]
