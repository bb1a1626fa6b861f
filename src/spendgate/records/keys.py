"""API keys at runtime: create (the secret is returned once, only its digest is kept), list,
revoke, rotate. The gateway's ``KeyRing`` is changed in place, so a revoked or rotated-away
secret stops authenticating on the very next request.

Admin routes run in a thread pool: changes are serialised, and the ring is set from the record
as committed (active: its one digest; revoked: none), so a rotate racing a revoke, or another
rotate, cannot leave a secret live that the database no longer holds.

Config keys (source "config") are listed read-only; their secrets live in environment variables.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from spendgate.config import Config
from spendgate.config.keys import KeyFields
from spendgate.domain.keys import ApiKey
from spendgate.gateway.auth import KeyRing, digest
from spendgate.records.errors import (
    ConfigManagedError,
    RecordConflictError,
    RecordInvalidError,
    RecordNotFoundError,
)
from spendgate.records.validation import render_path
from spendgate.store.keys import KeyRepository, StoredKey

__all__ = ["KeyRecords", "KeySpecIn", "KeyView", "NewSecret"]

audit = logging.getLogger("spendgate.audit")

SECRET_PREFIX = "sg-"
_WHAT = "API key"


class KeySpecIn(KeyFields):
    """A key to create at runtime: a config key without ``key_env``; no id: generated."""


@dataclass(frozen=True, slots=True)
class KeyView:
    """A key as listed: never its secret nor the secret's digest."""

    key: ApiKey
    source: str  # "config" | "api"
    created_at: datetime | None = None
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewSecret:
    view: KeyView
    secret: str  # shown once


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _view(stored: StoredKey) -> KeyView:
    return KeyView(stored.key, "api", stored.created_at, stored.rotated_at, stored.revoked_at)


class KeyRecords:
    def __init__(self, config: Config, ring: KeyRing, repository: KeyRepository) -> None:
        self._config = config
        self._config_keys = {key.id: key for key in config.api_keys()}
        self._ring = ring
        self._repository = repository
        self._changing = threading.Lock()

    def load(self) -> list[str]:
        """Put every active runtime key into the ring; returns ids skipped for colliding
        with a config key (the config wins)."""
        skipped: list[str] = []
        for stored in self._repository.list_keys(include_revoked=False):
            if stored.key.id in self._config_keys:
                skipped.append(stored.key.id)
                continue
            self._ring.put(stored.key, stored.secret_digest)
        return skipped

    def drop_revoked(self) -> None:
        """Take out of the ring the runtime keys revoked since they were put in (by another
        replica: this one drops a key as it revokes it)."""
        for stored in self._repository.list_keys(include_revoked=True):
            if stored.key.id not in self._config_keys and stored.revoked_at is not None:
                self._ring.drop(stored.key.id)

    def find(self, key_id: str) -> ApiKey | None:
        """The key with this id, config or runtime, revoked ones included."""
        if key_id in self._config_keys:
            return self._config_keys[key_id]
        stored = self._repository.get(key_id)
        return None if stored is None else stored.key

    def all(self) -> list[KeyView]:
        views = [KeyView(key, "config") for key in self._config_keys.values()]
        views.extend(_view(stored) for stored in self._repository.list_keys())
        return views

    def create(self, document: object, *, actor: str) -> NewSecret:
        spec = _validate(document)
        key_id = spec.id or f"key-{secrets.token_hex(4)}"
        if key_id in self._config_keys:
            raise RecordConflictError(f"The key id {key_id!r} is used by the config file.")
        key = ApiKey(
            id=key_id,
            principal=spec.principal,
            project=spec.project,
            permissions=frozenset(spec.permissions),
            models=None if spec.models is None else frozenset(spec.models),
        )
        secret = _new_secret()
        with self._changing:
            try:
                stored = self._repository.add(key, digest(secret))
            except IntegrityError:
                raise RecordConflictError(
                    f"The key id {key_id!r} is already used (revoked keys keep their id)."
                ) from None
            self._ring.put(key, stored.secret_digest)
        audit.info(
            "api key %s created by %s (principal %s, project %s, permissions %s)",
            key_id, actor, key.principal, key.project, sorted(key.permissions) or "none",
        )  # fmt: skip
        return NewSecret(_view(stored), secret)

    def revoke(self, key_id: str, *, actor: str) -> KeyView:
        with self._changing:
            self._active(key_id)
            changed = self._repository.revoke(key_id)
            revoked = self._committed(key_id)
        if not changed:
            raise _already_revoked(key_id)
        audit.info("api key %s revoked by %s", key_id, actor)
        return _view(revoked)

    def rotate(self, key_id: str, *, actor: str) -> NewSecret:
        secret = _new_secret()
        with self._changing:
            self._active(key_id)
            changed = self._repository.rotate(key_id, digest(secret))
            rotated = self._committed(key_id)
        if not changed:
            raise _already_revoked(key_id)
        audit.info("api key %s rotated by %s", key_id, actor)
        return NewSecret(_view(rotated), secret)

    def _committed(self, key_id: str) -> StoredKey:
        """The key as the database now holds it, applied to the ring."""
        stored = self._repository.get(key_id)
        assert stored is not None  # keys are never deleted
        if stored.revoked:
            self._ring.drop(key_id)
        else:
            self._ring.put(stored.key, stored.secret_digest)
        return stored

    def _active(self, key_id: str) -> StoredKey:
        if key_id in self._config_keys:
            raise ConfigManagedError(_WHAT, key_id, self._config.source)
        stored = self._repository.get(key_id)
        if stored is None:
            raise RecordNotFoundError(_WHAT, key_id)
        if stored.revoked:
            raise _already_revoked(key_id)
        return stored


def _already_revoked(key_id: str) -> RecordConflictError:
    return RecordConflictError(f"The key {key_id!r} is already revoked.")


def _validate(document: object) -> KeySpecIn:
    from pydantic import ValidationError

    from spendgate.config.messages import messages

    try:
        return KeySpecIn.model_validate(document)
    except ValidationError as error:
        raise RecordInvalidError(
            [(render_path(loc), why) for loc, why in messages(error)]
        ) from None
