"""The counting identity each budget's counters were last written under.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

Self-contained like 0001: a migration is history and must not change when ``schema.py`` does.
Existing counters keep generation 0: the first start after this migration records each
policy's identity as it is then.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 200


def upgrade() -> None:
    op.create_table(
        "counting_identities",
        sa.Column("policy_id", sa.String(NAME), nullable=False),
        sa.Column("identity", sa.Text(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("policy_id", name="pk_counting_identities"),
    )


def downgrade() -> None:
    op.drop_table("counting_identities")
