"""Persistence: the journal (decisions, usage counters, rollups), runtime records, migrations.

SQLAlchemy Core over SQLite (default, WAL) or PostgreSQL. See docs/journal.md.
"""

from spendgate.store.alerts import AlertRepository
from spendgate.store.approvals import ApprovalError, ApprovalRepository, budget_subject
from spendgate.store.db import DEFAULT_DATABASE_URL
from spendgate.store.journal import Journal
from spendgate.store.migrate import migrate
from spendgate.store.policies import PolicyRepository
from spendgate.store.prices import PricingRepository
from spendgate.store.records import (
    Alert,
    AlertState,
    Approval,
    ApprovalEvent,
    ApprovalScope,
    ApprovalState,
    DecisionFilter,
    StoredDecision,
    StoredPrice,
    UsageTotals,
)
from spendgate.store.writer import JournalClosedError, JournalError, WriterSettings, WriterStats

__all__ = [
    "DEFAULT_DATABASE_URL",
    "Alert",
    "AlertRepository",
    "AlertState",
    "Approval",
    "ApprovalError",
    "ApprovalEvent",
    "ApprovalRepository",
    "ApprovalScope",
    "ApprovalState",
    "DecisionFilter",
    "Journal",
    "JournalClosedError",
    "JournalError",
    "PolicyRepository",
    "PricingRepository",
    "StoredDecision",
    "StoredPrice",
    "UsageTotals",
    "WriterSettings",
    "WriterStats",
    "budget_subject",
    "migrate",
]
