"""What the admin API's routers work with: the running gateway's live objects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spendgate.config import Config
    from spendgate.gateway.auth import KeyRing
    from spendgate.governor import Governor
    from spendgate.providers.registry import UpstreamRegistry
    from spendgate.records import RuntimeRecords
    from spendgate.store.journal import Journal

__all__ = ["AdminContext"]


@dataclass
class AdminContext:
    config: Config  # the loaded spendgate.config.Config
    governor: Governor  # governor.state (GovernanceState), governor.ledger, governor.journal
    keys: KeyRing  # spendgate.gateway.auth.KeyRing
    upstreams: UpstreamRegistry
    journal: Journal  # always present when serving
    records: RuntimeRecords  # budgets, pricing, keys managed at runtime (spendgate.records)
    admin_token_digest: str | None  # sha256 hex of SPENDGATE_ADMIN_TOKEN, if set
    started_at: datetime
