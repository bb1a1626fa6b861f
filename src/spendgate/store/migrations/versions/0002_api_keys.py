"""API keys created at runtime.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-20

Self-contained like 0001: a migration is history and must not change when ``schema.py`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 64
NAME = 200


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(NAME), nullable=False),
        sa.Column("secret_digest", sa.String(ID), nullable=False),
        sa.Column("principal", sa.String(NAME)),
        sa.Column("project", sa.String(NAME)),
        sa.Column("permissions", sa.Text(), nullable=False),
        sa.Column("models", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("rotated_at", sa.DateTime()),
        sa.Column("revoked_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("secret_digest", name="uq_api_keys_secret_digest"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
