"""The journal's tables (SQLAlchemy Core). ``migrations/versions`` must create exactly this.

Rows stay small: a decision row holds its own per-request facts only; nothing
static (policy specs, prices, model metadata) is copied into it. Amounts that SQL adds up use the
split fixed-point pair ``<x>_units`` / ``<x>_atto`` (see ``money``); other amounts are exact text.
Key columns of rollups are NOT NULL with ``''`` for "none" so they can be part of a primary key.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from spendgate.domain.latency import LATENCY_EDGES_MS
from spendgate.store.sqltypes import CompactJson, DecimalText, UtcDateTime

__all__ = [
    "ALERT_UNRESOLVED",
    "APPROVAL_PENDING",
    "LATENCY_COLUMNS",
    "ROLLUP_AMOUNTS",
    "ROLLUP_COUNT_COLUMNS",
    "alerts",
    "api_keys",
    "approval_events",
    "approvals",
    "budget_policies",
    "counting_identities",
    "metadata",
    "outbox_cursors",
    "policy_snapshots",
    "pricing_rows",
    "rate_limits",
    "routing_decisions",
    "usage_counters",
    "usage_rollups",
    "usage_rollups_agents",
    "usage_rollups_agents_daily",
    "usage_rollups_daily",
    "usage_rollups_models",
    "usage_rollups_models_daily",
    "usage_rollups_principals",
    "usage_rollups_principals_daily",
    "webhook_deliveries",
]

# Stable constraint names, so later (batch-mode) migrations can address them on SQLite.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = 64  # decision / approval / alert ids
NAME = 200  # model, provider, policy, scope member ids
TAG = 32  # enum-like values

# Partial-index predicates, as literal SQL so the index, the migration and the
# ``ON CONFLICT … WHERE`` targets that must match it are textually the same.
APPROVAL_PENDING = text("state = 'pending'")
ALERT_UNRESOLVED = text("state IN ('open', 'acknowledged')")

pricing_rows = Table(
    "pricing_rows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(NAME), nullable=False),
    Column("input_per_mtok", DecimalText, nullable=False),
    Column("output_per_mtok", DecimalText, nullable=False),
    Column("cached_input_per_mtok", DecimalText),
    Column("per_request", DecimalText, nullable=False),
    Column("effective_from", UtcDateTime),
    Column("effective_to", UtcDateTime),
    Column("source", String(TAG), nullable=False),
    Column("precision", String(TAG), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_pricing_rows_model", "model"),
    # Ids are never reused (SQLite would give a deleted newest row's id to the next insert).
    sqlite_autoincrement=True,
)

budget_policies = Table(
    "budget_policies",
    metadata,
    Column("id", String(NAME), primary_key=True),
    Column("spec", CompactJson, nullable=False),  # everything but id / source / enabled
    Column("source", String(TAG), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Rate limits created at runtime (admin API / CLI); config ones live in the YAML. ``spec`` is the
# ``rate_limits`` entry without its id.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("id", String(NAME), primary_key=True),
    Column("spec", CompactJson, nullable=False),
    Column("source", String(TAG), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# The counting identity (``domain.budgets.CountingIdentity``: metric, scope kind, interval) each
# policy id's counters were last written under, config and runtime policies alike. A policy whose
# identity differs at start-up gets the next ``generation``: fresh counters under a new counter
# id, the old ones kept and never read under the new meaning.
counting_identities = Table(
    "counting_identities",
    metadata,
    Column("policy_id", String(NAME), primary_key=True),
    Column("identity", CompactJson, nullable=False),
    Column("generation", Integer, nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
)

# Budget evaluations in a decision's detail refer to the policy *as it was* by content digest:
# each distinct policy version is stored once here instead of being copied into every row.
policy_snapshots = Table(
    "policy_snapshots",
    metadata,
    Column("digest", String(TAG), primary_key=True),
    Column("policy_id", String(NAME), nullable=False),
    Column("spec", CompactJson, nullable=False),  # the full policy, id/source/enabled included
    Column("created_at", UtcDateTime, nullable=False),
)

routing_decisions = Table(
    "routing_decisions",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("mode", String(TAG), nullable=False),
    Column("project", String(NAME)),
    Column("principal", String(NAME)),
    Column("api_key", String(NAME)),  # the key's id, never the secret
    Column("agent", String(NAME)),
    Column("session", String(NAME)),
    Column("task_class", String(TAG), nullable=False),
    Column("requested_model", String(NAME), nullable=False),
    Column("default_model", String(NAME), nullable=False),
    Column("recommended_model", String(NAME), nullable=False),
    Column("actual_model", String(NAME)),  # NULL: refused, no model called
    Column("provider", String(NAME)),
    Column("routing_action", String(TAG), nullable=False),
    Column("would_action", String(TAG)),
    Column("health", String(TAG), nullable=False),
    Column("complexity", Float, nullable=False),
    Column("estimated_lower_usd", DecimalText),  # NULL: unpriced
    Column("estimated_upper_usd", DecimalText),
    Column("precision", String(TAG), nullable=False),
    Column("estimated_saving_usd", DecimalText),
    # Rerouted: what the actual usage would have cost on the requested model (at settlement).
    Column("requested_cost_usd", DecimalText),
    Column("reason_codes", CompactJson, nullable=False),
    # Compact JSON: explanation, estimate tokens, complexity terms, budget evaluations,
    # candidates, extra. See ``codec`` for the keys.
    Column("detail", CompactJson, nullable=False),
    # Filled when the call settles.
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("cached_input_tokens", BigInteger),
    Column("actual_cost_usd", DecimalText),  # NULL after settlement: unpriced, never $0
    Column("latency_ms", Float),
    Column("status", String(TAG)),
    Column("usage_estimated", Boolean),
    Column("settled_at", UtcDateTime),
    Index("ix_routing_decisions_created_at", "created_at"),
    # Scope filters are always "this member, newest first": lead with the scope, then time.
    Index("ix_routing_decisions_project", "project", "created_at"),
    Index("ix_routing_decisions_principal", "principal", "created_at"),
    Index("ix_routing_decisions_api_key", "api_key", "created_at"),
    Index("ix_routing_decisions_agent", "agent", "created_at"),
    Index("ix_routing_decisions_session", "session", "created_at"),
)

usage_counters = Table(
    "usage_counters",
    metadata,
    Column("policy_id", String(NAME), primary_key=True),
    Column("member", String(NAME), primary_key=True),
    Column("window_key", String(TAG), primary_key=True),
    Column("settled_units", BigInteger, nullable=False),
    Column("settled_atto", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # For ``load_counters(live)`` and pruning of old windows.
    Index("ix_usage_counters_window_key", "window_key"),
)

# The rollups' integer counts: the writer adds to them, the admin queries sum them. Besides
# these a rollup sums the amounts of ``ROLLUP_AMOUNTS`` (units/atto pairs), the latency
# histogram ``LATENCY_COLUMNS`` and ``latency_ms_total``.
ROLLUP_COUNT_COLUMNS: Final = (
    "requests",
    "settled",
    "blocked",
    "would_blocked",
    "rerouted",
    "unpriced",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
)

# cost: actual spend; saved: what rerouted requests' usage would have cost more on the
# requested model; extra: what it cost more than on the requested model (escalations).
ROLLUP_AMOUNTS: Final = ("cost", "saved", "extra")

# Settled requests per latency bucket (``domain.latency``): percentiles that add up.
LATENCY_COLUMNS: Final = (*(f"latency_le_{edge}" for edge in LATENCY_EDGES_MS), "latency_slower")


def _rollup(name: str, time_column: str, dimensions: tuple[str, ...], *extra: Index) -> Table:
    """A rollup table: one row per time bucket and combination of ``dimensions``. Clustered on
    its key (no rowid on SQLite), so a range of buckets is read in order, not row by row."""
    return Table(
        name,
        metadata,
        Column(time_column, UtcDateTime, primary_key=True),
        *(Column(dimension, String(NAME), primary_key=True) for dimension in dimensions),
        *(Column(count, BigInteger, nullable=False) for count in ROLLUP_COUNT_COLUMNS),
        *(
            Column(f"{amount}_{part}", BigInteger, nullable=False, server_default="0")
            for amount in ROLLUP_AMOUNTS
            for part in ("units", "atto")
        ),
        Column("latency_ms_total", Float, nullable=False),
        *(Column(c, BigInteger, nullable=False, server_default="0") for c in LATENCY_COLUMNS),
        *extra,
        sqlite_with_rowid=False,
    )


# The finest rollup: every dimension the usage filters know, by UTC hour. The coarser ones
# below are projections of it kept by the same writer transaction, so that a page over 90 days
# reads thousands of rows, not millions (``store.rollups`` chooses).
_FINE: Final = ("project", "principal", "model", "provider")
usage_rollups = _rollup(
    "usage_rollups",
    "hour_start",
    _FINE,
    Index("ix_usage_rollups_project_hour_start", "project", "hour_start"),
)
usage_rollups_daily = _rollup("usage_rollups_daily", "day_start", _FINE)
usage_rollups_models = _rollup("usage_rollups_models", "hour_start", ("model", "provider"))
usage_rollups_models_daily = _rollup(
    "usage_rollups_models_daily", "day_start", ("model", "provider")
)
usage_rollups_principals = _rollup(
    "usage_rollups_principals", "hour_start", ("project", "principal")
)
usage_rollups_principals_daily = _rollup(
    "usage_rollups_principals_daily", "day_start", ("project", "principal")
)
usage_rollups_agents = _rollup("usage_rollups_agents", "hour_start", ("project", "agent"))
usage_rollups_agents_daily = _rollup(
    "usage_rollups_agents_daily", "day_start", ("project", "agent")
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("subject", String(NAME + 20), nullable=False),  # usage-budget:<policy_id>
    Column("requester", String(NAME), nullable=False),
    Column("state", String(TAG), nullable=False),
    Column("scope", String(TAG)),  # once | session | until, set when approved
    Column("session_id", String(NAME)),
    Column("until", UtcDateTime),
    Column("extra_amount", DecimalText),
    Column("approver", String(NAME)),
    Column("reason", Text),  # the requester's
    Column("created_at", UtcDateTime, nullable=False),
    Column("decided_at", UtcDateTime),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("consumed_at", UtcDateTime),
    Column("project", String(NAME)),  # the requester's: who else may read it
    Column("member", String(NAME), nullable=False, server_default=""),  # of the policy
    Column("window_key", String(TAG), nullable=False, server_default=""),
    Column("window_end", UtcDateTime),
    Column("amount", DecimalText),  # asked for beyond the limit, in the policy's metric
    Column("note", Text),  # the approver's note, or why it was denied
    Column("context", CompactJson),  # the blocked request and the policy's state then
    # The guarantee behind idempotent creation: one pending request per subject, requester,
    # policy member and window.
    Index(
        "uq_approvals_pending",
        "subject",
        "requester",
        "member",
        "window_key",
        unique=True,
        sqlite_where=APPROVAL_PENDING,
        postgresql_where=APPROVAL_PENDING,
    ),
    Index("ix_approvals_state_created_at", "state", "created_at"),
)

approval_events = Table(
    "approval_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("approval_id", String(ID), ForeignKey("approvals.id"), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("event", String(TAG), nullable=False),
    Column("actor", String(NAME)),
    Column("detail", CompactJson),
    Index("ix_approval_events_approval_id", "approval_id"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("alert_kind", String(TAG), nullable=False),
    Column("severity", String(TAG), nullable=False),
    Column("scope", String(NAME + 20), nullable=False),
    Column("summary", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("recommended_action", Text, nullable=False),
    Column("dedupe_key", String(NAME * 2), nullable=False),
    Column("occurrences", BigInteger, nullable=False),
    Column("first_seen", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False),
    Column("state", String(TAG), nullable=False),
    Column("acknowledged_by", String(NAME)),
    Column("acknowledged_at", UtcDateTime),
    Column("resolved_at", UtcDateTime),
    # The tenant the alert is about ("project:acme"; a non-admin key reads only its own
    # tenant's); None: the admins' alone (providers, prices, global budgets).
    Column("tenant", String(NAME + 20)),
    # When it was last announced (webhooks): a repeat inside the cooldown is not.
    Column("announced_at", UtcDateTime),
    # An open (or acknowledged) alert absorbs repeats; once resolved, a repeat opens a new one.
    Index(
        "uq_alerts_dedupe_key_unresolved",
        "dedupe_key",
        unique=True,
        sqlite_where=ALERT_UNRESOLVED,
        postgresql_where=ALERT_UNRESOLVED,
    ),
    Index("ix_alerts_state_last_seen", "state", "last_seen"),
)

# The webhook outbox: one row per (event, webhook), written in the transaction that records
# the event, sent by the notifier until the receiver takes it. ``id`` is the delivery id the
# receiver sees on every attempt; ``body`` the exact bytes signed and sent.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("webhook_id", String(NAME), nullable=False),
    Column("event", String(TAG), nullable=False),
    Column("subject_id", String(ID), nullable=False),  # the alert's or approval's id
    Column("body", Text, nullable=False),
    Column("state", String(TAG), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Index("ix_webhook_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
    Index("ix_webhook_deliveries_subject_id", "subject_id"),
)

# How far a relay has read an append-only table (the approval events turned into deliveries).
outbox_cursors = Table(
    "outbox_cursors",
    metadata,
    Column("name", String(TAG), primary_key=True),
    Column("position", BigInteger, nullable=False),
)

# API keys created at runtime (admin API / CLI); config keys live in the YAML. Only the SHA-256
# digest of a secret is stored. Revoked keys are kept (``revoked_at``) for audit.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(NAME), primary_key=True),
    Column("secret_digest", String(ID), nullable=False, unique=True),
    Column("principal", String(NAME)),
    Column("project", String(NAME)),
    Column("permissions", CompactJson, nullable=False),  # sorted list of permission names
    Column("models", CompactJson),  # NULL: every model
    Column("created_at", UtcDateTime, nullable=False),
    Column("rotated_at", UtcDateTime),
    Column("revoked_at", UtcDateTime),
)
