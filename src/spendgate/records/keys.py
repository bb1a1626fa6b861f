"""API keys at runtime: create (the secret is returned once, only its digest is kept), list,
revoke, rotate. The gateway's ``KeyRing`` is changed in place, so a revoked or rotated-away
secret stops authenticating on the very next request.

Config keys (source "config") are listed read-only; their secrets live in environment variables.
"""

from __future__ import annotations

import logging
import secrets
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

    def load(self) -> list[str]:
        """Put every active runtime key into the ring; returns ids skipped for colliding
        with a config key (the config wins)."""
        skipped: list[str] = []
        for stored in self._repository.list_keys(include_revoked=False):
            if stored.key.id in self._config_keys:
                skipped.append(stored.key.id)
                continue
            self._ring.add(stored.key, stored.secret_digest)
        return skipped

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
        try:
            stored = self._repository.add(key, digest(secret))
        except IntegrityError:
            raise RecordConflictError(
                f"The key id {key_id!r} is already used (revoked keys keep their id)."
            ) from None
        self._ring.add(key, stored.secret_digest)
        audit.info(
            "api key %s created by %s (principal %s, project %s, permissions %s)",
            key_id, actor, key.principal, key.project, sorted(key.permissions) or "none",
        )  # fmt: skip
        return NewSecret(_view(stored), secret)

    def revoke(self, key_id: str, *, actor: str) -> KeyView:
        stored = self._active(key_id)
        self._repository.revoke(key_id)
        self._ring.remove(stored.secret_digest)
        audit.info("api key %s revoked by %s", key_id, actor)
        revoked = self._repository.get(key_id)
        assert revoked is not None
        return _view(revoked)

    def rotate(self, key_id: str, *, actor: str) -> NewSecret:
        stored = self._active(key_id)
        secret = _new_secret()
        new_digest = digest(secret)
        self._repository.rotate(key_id, new_digest)
        # Old secret out first: there is no instant where both authenticate.
        self._ring.remove(stored.secret_digest)
        self._ring.add(stored.key, new_digest)
        audit.info("api key %s rotated by %s", key_id, actor)
        rotated = self._repository.get(key_id)
        assert rotated is not None
        return NewSecret(_view(rotated), secret)

    def _active(self, key_id: str) -> StoredKey:
        if key_id in self._config_keys:
            raise ConfigManagedError(_WHAT, key_id, self._config.source)
        stored = self._repository.get(key_id)
        if stored is None:
            raise RecordNotFoundError(_WHAT, key_id)
        if stored.revoked:
            raise RecordConflictError(f"The key {key_id!r} is already revoked.")
        return stored


def _validate(document: object) -> KeySpecIn:
    from pydantic import ValidationError

    from spendgate.config.messages import messages

    try:
        return KeySpecIn.model_validate(document)
    except ValidationError as error:
        raise RecordInvalidError(
            [(render_path(loc), why) for loc, why in messages(error)]
        ) from None
