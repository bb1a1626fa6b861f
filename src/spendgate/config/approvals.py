"""The ``approvals`` section: how long a budget-override request waits for a decision."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from spendgate.config.errors import invalid
from spendgate.config.values import Duration, Spec


class ApprovalsSpec(Spec):
    # A pending request nobody decides expires after this (it never applies then).
    pending_ttl: Duration = timedelta(hours=24)
    # The longest a request may hold (``x-spendgate-approval-wait``) for its approval.
    max_wait_seconds: int = Field(default=300, ge=0, le=3600)

    @field_validator("pending_ttl")
    @classmethod
    def _ttl(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise invalid(f"must be at least 1 minute (got {value})")
        return value
