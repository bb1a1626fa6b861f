"""Budget policies created at runtime (admin API / CLI); config policies live in the YAML.

A policy's definition is a small JSON ``spec``; ``id``, ``source`` and ``enabled`` are columns so
that listing and toggling need not parse it. Deleting a policy leaves its usage counters, which
age out with their windows (``Journal.prune_counters``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, delete, select

from spendgate.domain.budgets import BudgetPolicy
from spendgate.store import schema
from spendgate.store.db import dialect_insert, write_engine
from spendgate.store.policy_codec import policy_from_row, policy_spec

__all__ = ["PolicyRepository"]


class PolicyRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._write = write_engine(engine)

    def save(self, policy: BudgetPolicy, *, now: datetime | None = None) -> None:
        """Create or replace the policy with this id (``created_at`` is kept on replace)."""
        at = now or datetime.now(UTC)
        table = schema.budget_policies
        with self._write.begin() as connection:
            insert = dialect_insert(connection, table).values(
                id=policy.id,
                spec=policy_spec(policy),
                source=policy.source,
                enabled=policy.enabled,
                created_at=at,
                updated_at=at,
            )
            excluded = insert.excluded
            connection.execute(
                insert.on_conflict_do_update(
                    index_elements=["id"],
                    set_={
                        "spec": excluded.spec,
                        "source": excluded.source,
                        "enabled": excluded.enabled,
                        "updated_at": excluded.updated_at,
                    },
                )
            )

    def get(self, policy_id: str) -> BudgetPolicy | None:
        table = schema.budget_policies
        with self._engine.connect() as connection:
            row = connection.execute(select(table).where(table.c.id == policy_id)).mappings()
            first = row.first()
        return None if first is None else policy_from_row(first)

    def list_policies(self, *, enabled_only: bool = False) -> list[BudgetPolicy]:
        table = schema.budget_policies
        query = select(table).order_by(table.c.id)
        if enabled_only:
            query = query.where(table.c.enabled.is_(True))
        with self._engine.connect() as connection:
            return [policy_from_row(row) for row in connection.execute(query).mappings()]

    def set_enabled(self, policy_id: str, enabled: bool, *, now: datetime | None = None) -> bool:
        table = schema.budget_policies
        with self._write.begin() as connection:
            result = connection.execute(
                table.update()
                .where(table.c.id == policy_id)
                .values(enabled=enabled, updated_at=now or datetime.now(UTC))
            )
            return result.rowcount == 1

    def delete(self, policy_id: str) -> bool:
        table = schema.budget_policies
        with self._write.begin() as connection:
            result = connection.execute(delete(table).where(table.c.id == policy_id))
            return result.rowcount == 1
