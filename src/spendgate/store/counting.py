"""Which counters each budget policy reads: the counting identity its counters were last written
under (``schema.counting_identities``) and the generation of counters that identity writes.

Counters are keyed by a policy's ``counter_id``. When the policy with an id comes back with
another counting identity (an edited config: tokens → usd, daily → monthly, project → principal),
reading its counters would reinterpret them — 1,010,242 tokens read as $1,010,242. It moves to
the next generation instead: fresh counters under a new counter id, from now on. The old ones
are kept (they age out with their windows) and are never read under the new identity.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, inspect, select

from spendgate.domain.budgets import BudgetPolicy, CountingIdentity, counting_changes
from spendgate.store import schema
from spendgate.store.db import dialect_insert, write_engine
from spendgate.store.policy_codec import identity_from_json, identity_from_spec, identity_json

__all__ = ["CountingChange", "CountingRegistry"]

log = logging.getLogger("spendgate.journal")


@dataclass(frozen=True, slots=True)
class CountingChange:
    """A policy whose counting identity differs from the one its counters were written under;
    ``before`` is ``None`` when the recorded one cannot be read."""

    policy_id: str
    before: CountingIdentity | None
    after: CountingIdentity
    generation: int  # the generation of fresh counters it counts in

    @property
    def changes(self) -> list[str]:
        if self.before is None:
            return ["the identity recorded for its counters is unreadable"]
        return counting_changes(self.before, self.after)


class CountingRegistry:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def resolve(
        self, policies: Iterable[BudgetPolicy], *, now: datetime | None = None
    ) -> tuple[tuple[BudgetPolicy, ...], list[CountingChange]]:
        """``policies`` with the generation of counters each reads, and the ones that changed
        (logged at WARNING). An id seen for the first time is recorded with the identity it
        was last evaluated under (its counters predate this record), else its own.

        One write transaction (row locks on PostgreSQL, the write lock on SQLite), so gateway
        processes starting together on one database agree on every generation.
        """
        at = now or datetime.now(UTC)
        table = schema.counting_identities
        resolved: list[BudgetPolicy] = []
        changes: list[CountingChange] = []
        with write_engine(self._engine).begin() as connection:
            for policy in policies:
                identity = policy.counting
                row = _rows(connection, [policy.id], lock=True).get(policy.id)
                if row is None:
                    first = _last_evaluated(connection, policy.id) or identity_json(identity)
                    connection.execute(
                        dialect_insert(connection, table)
                        .values(
                            policy_id=policy.id,
                            identity=first,
                            generation=policy.generation,
                            changed_at=at,
                        )
                        .on_conflict_do_nothing(index_elements=["policy_id"])
                    )
                    row = _rows(connection, [policy.id], lock=True)[policy.id]
                change = _change(policy, row)
                generation: int = row["generation"]
                if change is not None:
                    generation = change.generation
                    connection.execute(
                        table.update()
                        .where(table.c.policy_id == policy.id)
                        .values(
                            identity=identity_json(identity), generation=generation, changed_at=at
                        )
                    )
                    changes.append(change)
                resolved.append(replace(policy, generation=generation))
        for change in changes:
            log.warning(
                "budget %s: what its counters measure changed (%s); it starts on fresh "
                "counters now (generation %d). The old counters are kept and never read as "
                "the new budget's.",
                change.policy_id,
                "; ".join(change.changes),
                change.generation,
            )
        return tuple(resolved), changes

    def pending(self, policies: Sequence[BudgetPolicy]) -> list[CountingChange]:
        """The changes ``resolve`` would make for ``policies``, without writing anything (for
        ``spendgate config check``; the database may predate ``counting_identities``)."""
        changes: list[CountingChange] = []
        with self._engine.connect() as connection:
            recorded = inspect(connection).has_table(schema.counting_identities.name)
            rows = _rows(connection, [policy.id for policy in policies]) if recorded else {}
            for policy in policies:
                row = rows.get(policy.id)
                if row is None:
                    first = _last_evaluated(connection, policy.id)
                    row = None if first is None else {"identity": first, "generation": 0}
                change = None if row is None else _change(policy, row)
                if change is not None:
                    changes.append(change)
        return changes


def _rows(
    connection: Connection, policy_ids: Sequence[str], *, lock: bool = False
) -> dict[str, Any]:
    table = schema.counting_identities
    query = select(table).where(table.c.policy_id.in_(policy_ids))
    if lock:
        query = query.with_for_update()
    return {row["policy_id"]: row for row in connection.execute(query).mappings()}


def _last_evaluated(connection: Connection, policy_id: str) -> dict[str, Any] | None:
    """The identity of the newest version of ``policy_id`` that decisions were evaluated
    against (``policy_snapshots``): what counters written before identities were recorded
    measure. A small table (one row per policy version), read once per id ever."""
    snapshots = schema.policy_snapshots
    query = (
        select(snapshots.c.spec)
        .where(snapshots.c.policy_id == policy_id)
        .order_by(snapshots.c.created_at.desc())
        .limit(1)
    )
    spec = connection.execute(query).scalar()
    if spec is None:
        return None
    try:
        return identity_json(identity_from_spec(spec))
    except (KeyError, TypeError, ValueError):  # unreadable: nothing to go by
        return None


def _change(policy: BudgetPolicy, row: Any) -> CountingChange | None:
    try:
        before: CountingIdentity | None = identity_from_json(row["identity"])
    except (KeyError, TypeError, ValueError):  # edited by hand: count afresh
        before = None
    if before == policy.counting:
        return None
    return CountingChange(policy.id, before, policy.counting, row["generation"] + 1)
