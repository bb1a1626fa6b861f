"""Budget policies created at runtime (admin API / CLI); config policies live in the YAML.

A policy's definition is a small JSON ``spec``; ``id``, ``source`` and ``enabled`` are columns so
that listing and toggling need not parse it. Deleting a policy leaves its usage counters, which
age out with their windows (``Journal.prune_counters``).

A stored row that does not decode or breaks a bound (``policy_problems``: written by an older
version or by hand) is never returned as a policy: planning with it could fail every request in
its scope. ``invalid_policies`` lists such rows, so they can be shown and deleted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from sqlalchemy import Engine, Select, delete, select

from spendgate.domain.budgets import BudgetPolicy, policy_problems
from spendgate.store import schema
from spendgate.store.db import dialect_insert, write_engine
from spendgate.store.policy_codec import policy_from_row, policy_spec

__all__ = ["InvalidPolicy", "PolicyRepository"]


@dataclass(frozen=True, slots=True)
class InvalidPolicy:
    """A stored policy row that cannot be applied, and why."""

    id: str
    source: str
    problem: str


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
        """The policy with this id, if it is stored and valid."""
        table = schema.budget_policies
        found = self._decoded(select(table).where(table.c.id == policy_id))
        return next((p for p in found if isinstance(p, BudgetPolicy)), None)

    def list_policies(self, *, enabled_only: bool = False) -> list[BudgetPolicy]:
        """The valid stored policies (see ``invalid_policies`` for the others)."""
        table = schema.budget_policies
        query = select(table).order_by(table.c.id)
        if enabled_only:
            query = query.where(table.c.enabled.is_(True))
        return [p for p in self._decoded(query) if isinstance(p, BudgetPolicy)]

    def invalid_policies(self) -> list[InvalidPolicy]:
        table = schema.budget_policies
        query = select(table).order_by(table.c.id)
        return [p for p in self._decoded(query) if isinstance(p, InvalidPolicy)]

    def _decoded(self, query: Select[Any]) -> Iterator[BudgetPolicy | InvalidPolicy]:
        with self._engine.connect() as connection:
            rows = list(connection.execute(query).mappings())
        for row in rows:
            try:
                policy = policy_from_row(row)
            # What a malformed spec raises: a missing key or unknown timezone (KeyError), an
            # unknown enum value (ValueError), a wrong type, an amount that overflows.
            except (KeyError, TypeError, ValueError, ArithmeticError) as error:
                yield InvalidPolicy(row["id"], row["source"], f"unreadable ({_reason(error)})")
                continue
            problems = policy_problems(policy)
            if problems:
                reason = "; ".join(f"{field}: {why}" for field, why in problems)
                yield InvalidPolicy(row["id"], row["source"], reason)
            else:
                yield policy

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


def _reason(error: Exception) -> str:
    if isinstance(error, ZoneInfoNotFoundError):  # a KeyError whose argument is the message
        return str(error.args[0])
    if isinstance(error, KeyError):
        return f"missing field {error}"
    return str(error) or type(error).__name__
