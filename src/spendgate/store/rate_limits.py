"""Rate limits created at runtime (admin API / CLI), stored as their ``rate_limits`` entry;
config ones live in the YAML."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, select

from spendgate.store import schema
from spendgate.store.db import dialect_insert, write_engine

__all__ = ["RateLimitRepository"]


class RateLimitRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._write = write_engine(engine)

    def save(self, document: dict[str, Any], *, source: str, now: datetime | None = None) -> None:
        """Create or replace the entry ``document`` (with its ``id``); ``created_at`` is kept
        on replace."""
        at = now or datetime.now(UTC)
        table = schema.rate_limits
        spec = {key: value for key, value in document.items() if key != "id"}
        with self._write.begin() as connection:
            insert = dialect_insert(connection, table).values(
                id=document["id"], spec=spec, source=source, created_at=at, updated_at=at
            )
            connection.execute(
                insert.on_conflict_do_update(
                    index_elements=["id"],
                    set_={"spec": insert.excluded.spec, "updated_at": insert.excluded.updated_at},
                )
            )

    def documents(self) -> list[tuple[dict[str, Any], str]]:
        """Every stored entry (its id included) with its source, by id."""
        table = schema.rate_limits
        with self._engine.connect() as connection:
            rows = connection.execute(select(table).order_by(table.c.id)).mappings().all()
        return [({"id": row["id"], **row["spec"]}, row["source"]) for row in rows]

    def delete(self, limit_id: str) -> bool:
        table = schema.rate_limits
        with self._write.begin() as connection:
            result = connection.execute(delete(table).where(table.c.id == limit_id))
            return result.rowcount == 1
