"""Price row ids are never reused.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

SQLite gives a deleted newest row's id to the next insert unless the table is declared
``AUTOINCREMENT``; an operator who deleted ``api-7`` would see a different price appear as
``api-7``. The table is rebuilt with ``AUTOINCREMENT`` (its sequence starts after the highest
id it holds). PostgreSQL's sequences never reuse an id: nothing changes there.

Self-contained like 0001: a migration is history and must not change when ``schema.py`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "pricing_rows", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "pricing_rows", recreate="always", table_kwargs={"sqlite_autoincrement": False}
    ):
        pass
