"""API-key authentication: presented secret → ApiKey, from memory, never from the database.

Only SHA-256 digests of secrets are kept; a presented key is hashed and looked up, so the
lookup costs one hash and one dict access and no secret is retained after startup.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from spendgate.domain.keys import ApiKey

__all__ = ["KeyRing", "digest", "presented_key"]


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The credential a client sent: ``Authorization: Bearer <key>`` or ``x-api-key``."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    return None


class KeyRing:
    """The keys that may call the gateway, by the digest of their secret; at most one secret
    per key id."""

    __slots__ = ("_by_digest", "_digest_of")

    def __init__(self, keys: Iterable[tuple[ApiKey, str]] = ()) -> None:
        """``keys`` pairs each key with the SHA-256 digest of its secret."""
        self._by_digest: dict[str, ApiKey] = {}
        self._digest_of: dict[str, str] = {}  # key id → the digest it is accepted by
        for key, key_digest in keys:
            self.put(key, key_digest)

    @classmethod
    def from_environment(
        cls, keys: Iterable[ApiKey], environ: Mapping[str, str]
    ) -> tuple[KeyRing, list[str]]:
        """Config keys whose ``key_env`` is set; the ids of those left out are returned so the
        operator is told (a key without its secret cannot authenticate anybody)."""
        usable: list[tuple[ApiKey, str]] = []
        missing: list[str] = []
        for key in keys:
            secret = environ.get(key.key_env or "", "")
            if secret:
                usable.append((key, digest(secret)))
            else:
                missing.append(key.id)
        return cls(usable), missing

    def authenticate(self, secret: str | None) -> ApiKey | None:
        if not secret:
            return None
        return self._by_digest.get(digest(secret))

    # Runtime keys (admin API) change the ring in place: the proxy holds this object, and a
    # single dict store or pop is atomic, so a revoked key fails from the very next request.

    def put(self, key: ApiKey, key_digest: str) -> None:
        """Accept the secret whose digest is ``key_digest`` as ``key``, and no other secret of
        ``key.id``: the previous one is dropped first, so there is no instant where both
        authenticate."""
        previous = self._digest_of.get(key.id)
        if previous is not None and previous != key_digest:
            self._by_digest.pop(previous, None)
        self._digest_of[key.id] = key_digest
        self._by_digest[key_digest] = key

    def drop(self, key_id: str) -> None:
        """Accept no secret of ``key_id`` any more."""
        previous = self._digest_of.pop(key_id, None)
        if previous is not None:
            self._by_digest.pop(previous, None)

    def get(self, key_id: str) -> ApiKey | None:
        """The key with this id, if a secret authenticates it."""
        key_digest = self._digest_of.get(key_id)
        return None if key_digest is None else self._by_digest.get(key_digest)

    def digest_of(self, key_id: str) -> str | None:
        """The digest of the secret that authenticates ``key_id`` (None: none does)."""
        return self._digest_of.get(key_id)

    def keys(self) -> list[ApiKey]:
        """Every key a secret authenticates."""
        return list(self._by_digest.values())

    def __len__(self) -> int:
        return len(self._by_digest)
