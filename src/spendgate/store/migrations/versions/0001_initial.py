"""Initial journal schema.

Revision ID: 0001
Revises:
Create Date: 2026-05-01

Self-contained on purpose: a migration is history and must not change when ``schema.py`` does.
Storage types are the plain types behind ``sqltypes``: exact-decimal text is VARCHAR, UTC
instants are naive DATETIME/TIMESTAMP, compact JSON is TEXT. ``tests/test_store_migrate.py``
checks that this creates exactly what ``schema.metadata`` describes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 64
NAME = 200
TAG = 32
APPROVAL_PENDING = "state = 'pending'"
ALERT_UNRESOLVED = "state IN ('open', 'acknowledged')"


def _decimal() -> sa.String:
    return sa.String()


def upgrade() -> None:
    op.create_table(
        "pricing_rows",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(NAME), nullable=False),
        sa.Column("input_per_mtok", _decimal(), nullable=False),
        sa.Column("output_per_mtok", _decimal(), nullable=False),
        sa.Column("cached_input_per_mtok", _decimal()),
        sa.Column("per_request", _decimal(), nullable=False),
        sa.Column("effective_from", sa.DateTime()),
        sa.Column("effective_to", sa.DateTime()),
        sa.Column("source", sa.String(TAG), nullable=False),
        sa.Column("precision", sa.String(TAG), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pricing_rows"),
    )
    op.create_index("ix_pricing_rows_model", "pricing_rows", ["model"])

    op.create_table(
        "budget_policies",
        sa.Column("id", sa.String(NAME), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("source", sa.String(TAG), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_budget_policies"),
    )

    op.create_table(
        "policy_snapshots",
        sa.Column("digest", sa.String(TAG), nullable=False),
        sa.Column("policy_id", sa.String(NAME), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_policy_snapshots"),
    )

    op.create_table(
        "routing_decisions",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("mode", sa.String(TAG), nullable=False),
        sa.Column("project", sa.String(NAME)),
        sa.Column("principal", sa.String(NAME)),
        sa.Column("api_key", sa.String(NAME)),
        sa.Column("agent", sa.String(NAME)),
        sa.Column("session", sa.String(NAME)),
        sa.Column("task_class", sa.String(TAG), nullable=False),
        sa.Column("requested_model", sa.String(NAME), nullable=False),
        sa.Column("default_model", sa.String(NAME), nullable=False),
        sa.Column("recommended_model", sa.String(NAME), nullable=False),
        sa.Column("actual_model", sa.String(NAME), nullable=False),
        sa.Column("provider", sa.String(NAME), nullable=False),
        sa.Column("routing_action", sa.String(TAG), nullable=False),
        sa.Column("would_action", sa.String(TAG)),
        sa.Column("health", sa.String(TAG), nullable=False),
        sa.Column("complexity", sa.Float(), nullable=False),
        sa.Column("estimated_lower_usd", _decimal()),
        sa.Column("estimated_upper_usd", _decimal()),
        sa.Column("precision", sa.String(TAG), nullable=False),
        sa.Column("estimated_saving_usd", _decimal()),
        sa.Column("reason_codes", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger()),
        sa.Column("output_tokens", sa.BigInteger()),
        sa.Column("cached_input_tokens", sa.BigInteger()),
        sa.Column("actual_cost_usd", _decimal()),
        sa.Column("latency_ms", sa.Float()),
        sa.Column("status", sa.String(TAG)),
        sa.Column("usage_estimated", sa.Boolean()),
        sa.Column("settled_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_routing_decisions"),
    )
    op.create_index("ix_routing_decisions_created_at", "routing_decisions", ["created_at"])
    for scope in ("project", "principal", "api_key", "agent", "session"):
        op.create_index(f"ix_routing_decisions_{scope}", "routing_decisions", [scope, "created_at"])

    op.create_table(
        "usage_counters",
        sa.Column("policy_id", sa.String(NAME), nullable=False),
        sa.Column("member", sa.String(NAME), nullable=False),
        sa.Column("window_key", sa.String(TAG), nullable=False),
        sa.Column("settled_units", sa.BigInteger(), nullable=False),
        sa.Column("settled_atto", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("policy_id", "member", "window_key", name="pk_usage_counters"),
    )
    op.create_index("ix_usage_counters_window_key", "usage_counters", ["window_key"])

    op.create_table(
        "usage_rollups",
        sa.Column("hour_start", sa.DateTime(), nullable=False),
        sa.Column("project", sa.String(NAME), nullable=False),
        sa.Column("principal", sa.String(NAME), nullable=False),
        sa.Column("model", sa.String(NAME), nullable=False),
        sa.Column("provider", sa.String(NAME), nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in (
                "requests",
                "settled",
                "blocked",
                "would_blocked",
                "rerouted",
                "unpriced",
                "input_tokens",
                "output_tokens",
                "cached_input_tokens",
                "cost_units",
                "cost_atto",
                "saved_units",
                "saved_atto",
            )
        ),
        sa.Column("latency_ms_total", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "hour_start", "project", "principal", "model", "provider", name="pk_usage_rollups"
        ),
    )

    op.create_table(
        "approvals",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("subject", sa.String(NAME + 20), nullable=False),
        sa.Column("requester", sa.String(NAME), nullable=False),
        sa.Column("state", sa.String(TAG), nullable=False),
        sa.Column("scope", sa.String(TAG)),
        sa.Column("session_id", sa.String(NAME)),
        sa.Column("until", sa.DateTime()),
        sa.Column("extra_amount", _decimal()),
        sa.Column("approver", sa.String(NAME)),
        sa.Column("reason", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("decided_at", sa.DateTime()),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("consumed_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_approvals"),
    )
    op.create_index(
        "uq_approvals_pending",
        "approvals",
        ["subject", "requester"],
        unique=True,
        sqlite_where=sa.text(APPROVAL_PENDING),
        postgresql_where=sa.text(APPROVAL_PENDING),
    )
    op.create_index("ix_approvals_state_created_at", "approvals", ["state", "created_at"])

    op.create_table(
        "approval_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("approval_id", sa.String(ID), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("event", sa.String(TAG), nullable=False),
        sa.Column("actor", sa.String(NAME)),
        sa.Column("detail", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_approval_events"),
        sa.ForeignKeyConstraint(
            ["approval_id"],
            ["approvals.id"],
            name="fk_approval_events_approval_id_approvals",
        ),
    )
    op.create_index("ix_approval_events_approval_id", "approval_events", ["approval_id"])

    op.create_table(
        "alerts",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("alert_kind", sa.String(TAG), nullable=False),
        sa.Column("severity", sa.String(TAG), nullable=False),
        sa.Column("scope", sa.String(NAME + 20), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recommended_action", sa.Text(), nullable=False),
        sa.Column("dedupe_key", sa.String(NAME * 2), nullable=False),
        sa.Column("occurrences", sa.BigInteger(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(TAG), nullable=False),
        sa.Column("acknowledged_by", sa.String(NAME)),
        sa.Column("acknowledged_at", sa.DateTime()),
        sa.Column("resolved_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index(
        "uq_alerts_dedupe_key_unresolved",
        "alerts",
        ["dedupe_key"],
        unique=True,
        sqlite_where=sa.text(ALERT_UNRESOLVED),
        postgresql_where=sa.text(ALERT_UNRESOLVED),
    )
    op.create_index("ix_alerts_state_last_seen", "alerts", ["state", "last_seen"])


def downgrade() -> None:
    for table in (
        "alerts",
        "approval_events",
        "approvals",
        "usage_rollups",
        "usage_counters",
        "routing_decisions",
        "policy_snapshots",
        "budget_policies",
        "pricing_rows",
    ):
        op.drop_table(table)
