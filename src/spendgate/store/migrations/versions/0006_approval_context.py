"""Approval requests know what they are about: member, window, project and the blocked request.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

- ``project``: the requester's project, so a key of another project never sees the request.
- ``member`` / ``window_key`` / ``window_end``: the policy member and window the request is
  about. One pending request per (subject, requester, member, window) now: a new window, or
  another member of the same policy, is a new question.
- ``amount``: what the requester asked for beyond the limit (asked ahead), in the policy's
  metric. ``note``: the approver's note, or the reason of a denial (``reason`` stays the
  requester's). ``context``: the blocked request and the policy's state then.

Self-contained like 0001: a migration is history and must not change when ``schema.py`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 200
TAG = 32
PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    op.drop_index("uq_approvals_pending", table_name="approvals")
    with op.batch_alter_table("approvals") as table:
        table.add_column(sa.Column("project", sa.String(NAME)))
        table.add_column(sa.Column("member", sa.String(NAME), nullable=False, server_default=""))
        table.add_column(sa.Column("window_key", sa.String(TAG), nullable=False, server_default=""))
        table.add_column(sa.Column("window_end", sa.DateTime()))
        table.add_column(sa.Column("amount", sa.String()))
        table.add_column(sa.Column("note", sa.Text()))
        table.add_column(sa.Column("context", sa.Text()))
    op.create_index(
        "uq_approvals_pending",
        "approvals",
        ["subject", "requester", "member", "window_key"],
        unique=True,
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("uq_approvals_pending", table_name="approvals")
    with op.batch_alter_table("approvals") as table:
        for column in ("context", "note", "amount", "window_end", "window_key", "member"):
            table.drop_column(column)
        table.drop_column("project")
    op.create_index(
        "uq_approvals_pending",
        "approvals",
        ["subject", "requester"],
        unique=True,
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
