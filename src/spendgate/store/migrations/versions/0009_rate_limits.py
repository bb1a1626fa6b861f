"""Rate limits created at runtime.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

Self-contained like 0001: a migration is history and must not change when ``schema.py`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 200
TAG = 32


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("id", sa.String(NAME), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("source", sa.String(TAG), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rate_limits"),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
