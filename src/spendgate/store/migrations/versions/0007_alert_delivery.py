"""Alerts know their project and when they were announced; the webhook outbox.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

- ``alerts.tenant``: the tenant an alert is about ("project:acme"), so a key reads only its
  own tenant's alerts.
- ``alerts.announced_at``: when it was last sent to webhooks (the cooldown counts from it).
- ``webhook_deliveries``: the durable outbox; one row per event and webhook, retried until
  the receiver takes it. ``outbox_cursors``: how far the approval events were relayed.

Self-contained like 0001: a migration is history and must not change when ``schema.py`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 64
NAME = 200
TAG = 32


def upgrade() -> None:
    with op.batch_alter_table("alerts") as table:
        table.add_column(sa.Column("tenant", sa.String(NAME + 20)))
        table.add_column(sa.Column("announced_at", sa.DateTime()))
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("webhook_id", sa.String(NAME), nullable=False),
        sa.Column("event", sa.String(TAG), nullable=False),
        sa.Column("subject_id", sa.String(ID), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(TAG), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_status", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
    )
    op.create_index(
        "ix_webhook_deliveries_state_next_attempt_at",
        "webhook_deliveries",
        ["state", "next_attempt_at"],
    )
    op.create_index("ix_webhook_deliveries_subject_id", "webhook_deliveries", ["subject_id"])
    op.create_table(
        "outbox_cursors",
        sa.Column("name", sa.String(TAG), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_outbox_cursors"),
    )


def downgrade() -> None:
    op.drop_table("outbox_cursors")
    op.drop_index("ix_webhook_deliveries_subject_id", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_state_next_attempt_at", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("alerts") as table:
        table.drop_column("announced_at")
        table.drop_column("tenant")
