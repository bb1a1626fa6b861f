"""Refused decisions name no model called; savings are counterfactual on actual usage.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

- ``routing_decisions.actual_model`` and ``provider`` may be NULL: a refused decision called
  no model (the one it planned is kept in its detail). Older refused rows keep their value; the
  application reads them as refused all the same.
- ``routing_decisions.requested_cost_usd``: what a rerouted request's actual usage would have
  cost on the model the client asked for.
- ``usage_rollups.extra_units`` / ``extra_atto``: spend added by escalations and failovers to
  dearer models, shown beside the savings. The rollups' ``saved`` amounts are reset: they
  summed planning-time upper bounds, not savings, and cannot be recomputed from the rows.

Self-contained like 0001: a migration is history and must not change when ``schema.py`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 200


def upgrade() -> None:
    with op.batch_alter_table("routing_decisions") as table:
        table.alter_column("actual_model", existing_type=sa.String(NAME), nullable=True)
        table.alter_column("provider", existing_type=sa.String(NAME), nullable=True)
        table.add_column(sa.Column("requested_cost_usd", sa.String()))
    with op.batch_alter_table("usage_rollups") as table:
        table.add_column(
            sa.Column("extra_units", sa.BigInteger(), nullable=False, server_default="0")
        )
        table.add_column(
            sa.Column("extra_atto", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.execute("UPDATE usage_rollups SET saved_units = 0, saved_atto = 0")


def downgrade() -> None:
    with op.batch_alter_table("usage_rollups") as table:
        table.drop_column("extra_atto")
        table.drop_column("extra_units")
    op.execute(
        "UPDATE routing_decisions SET actual_model = requested_model WHERE actual_model IS NULL"
    )
    op.execute("UPDATE routing_decisions SET provider = '' WHERE provider IS NULL")
    with op.batch_alter_table("routing_decisions") as table:
        table.drop_column("requested_cost_usd")
        table.alter_column("provider", existing_type=sa.String(NAME), nullable=False)
        table.alter_column("actual_model", existing_type=sa.String(NAME), nullable=False)
