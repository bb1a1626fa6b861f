"""API keys created at runtime (admin API / CLI); config keys live in the YAML.

Only the SHA-256 digest of a secret is stored, never the secret. Revoking keeps the row
(``revoked_at``) so audits can still name the key behind old decisions; rotating replaces the
digest in place, so the key keeps its id (and its budgets and usage history).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, RowMapping, select

from spendgate.domain.keys import ApiKey
from spendgate.store import schema
from spendgate.store.db import write_engine

__all__ = ["KeyRepository", "StoredKey"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A runtime key: its identity, the digest of its secret, and its lifecycle times."""

    key: ApiKey
    secret_digest: str
    created_at: datetime
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def _names(values: frozenset[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)


def _name_set(row: RowMapping, column: str) -> frozenset[str] | None:
    value = row[column]
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValueError(f"its {column} column is not a JSON list of names")
    return frozenset(value)


def _key_from_row(row: RowMapping) -> StoredKey | None:
    """The key a row holds; None (logged) when a hand-edited row cannot be read: that key is
    not accepted, and the other keys still load."""
    try:
        permissions = _name_set(row, "permissions")
        if permissions is None:
            raise ValueError("its permissions column is empty")
        models = _name_set(row, "models")
    except ValueError as error:
        log.error(
            "runtime API key %s is unreadable and is not accepted: %s. Fix or delete its row "
            "in the api_keys table.",
            row["id"],
            error,
        )
        return None
    return StoredKey(
        key=ApiKey(
            id=row["id"],
            principal=row["principal"],
            project=row["project"],
            permissions=permissions,
            models=models,
        ),
        secret_digest=row["secret_digest"],
        created_at=row["created_at"],
        rotated_at=row["rotated_at"],
        revoked_at=row["revoked_at"],
    )


class KeyRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._write = write_engine(engine)

    def add(self, key: ApiKey, secret_digest: str, *, now: datetime | None = None) -> StoredKey:
        """Store a new key; raises ``sqlalchemy.exc.IntegrityError`` if the id exists."""
        at = now or datetime.now(UTC)
        values: dict[str, Any] = {
            "id": key.id,
            "secret_digest": secret_digest,
            "principal": key.principal,
            "project": key.project,
            "permissions": _names(key.permissions),
            "models": _names(key.models),
            "created_at": at,
        }
        with self._write.begin() as connection:
            connection.execute(schema.api_keys.insert().values(**values))
        return StoredKey(key=key, secret_digest=secret_digest, created_at=at)

    def get(self, key_id: str) -> StoredKey | None:
        table = schema.api_keys
        with self._engine.connect() as connection:
            row = connection.execute(select(table).where(table.c.id == key_id)).mappings().first()
        return None if row is None else _key_from_row(row)

    def list_keys(self, *, include_revoked: bool = True) -> list[StoredKey]:
        table = schema.api_keys
        query = select(table).order_by(table.c.id)
        if not include_revoked:
            query = query.where(table.c.revoked_at.is_(None))
        with self._engine.connect() as connection:
            rows = list(connection.execute(query).mappings())
        return [key for key in map(_key_from_row, rows) if key is not None]

    def revoke(self, key_id: str, *, now: datetime | None = None) -> bool:
        """Mark an active key revoked; False if there is no such active key."""
        table = schema.api_keys
        with self._write.begin() as connection:
            result = connection.execute(
                table.update()
                .where(table.c.id == key_id, table.c.revoked_at.is_(None))
                .values(revoked_at=now or datetime.now(UTC))
            )
            return result.rowcount == 1

    def rotate(self, key_id: str, secret_digest: str, *, now: datetime | None = None) -> bool:
        """Replace an active key's secret digest; False if there is no such active key."""
        table = schema.api_keys
        with self._write.begin() as connection:
            result = connection.execute(
                table.update()
                .where(table.c.id == key_id, table.c.revoked_at.is_(None))
                .values(secret_digest=secret_digest, rotated_at=now or datetime.now(UTC))
            )
            return result.rowcount == 1
