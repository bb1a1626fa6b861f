"""Rate limits at runtime: create, update, delete (source "api"); config ones (source
"config") are read-only here. Entries are validated exactly like the YAML's ``rate_limits``
section, and every change applies to the running gateway at once (``LiveState``)."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from spendgate.config.rate_limits import RateLimitSpec
from spendgate.records.errors import (
    ConfigManagedError,
    RecordConflictError,
    RecordInvalidError,
    RecordNotFoundError,
)
from spendgate.records.live import LiveState
from spendgate.records.validation import validate_rate_limit
from spendgate.store.rate_limits import RateLimitRepository

__all__ = ["RateLimitRecords", "rate_limit_document"]

log = logging.getLogger("spendgate.records")
audit = logging.getLogger("spendgate.audit")

_WHAT = "rate limit"
API_SOURCE = "api"


def rate_limit_document(spec: RateLimitSpec) -> dict[str, Any]:
    """The entry as the config file writes it (unset keys omitted)."""
    return spec.model_dump(mode="json", exclude_none=True)


class RateLimitRecords:
    def __init__(self, live: LiveState, repository: RateLimitRepository) -> None:
        self._live = live
        self._repository = repository

    def all(self) -> list[tuple[RateLimitSpec, str]]:
        """Every rate limit with its source: the config's, then the runtime ones."""
        live = self._live
        return [
            *((spec, "config") for spec in live.config.rate_limits),
            *((spec, API_SOURCE) for spec in live.api_rate_limits.values()),
        ]

    def get(self, limit_id: str) -> tuple[RateLimitSpec, str]:
        for spec, source in self.all():
            if spec.id == limit_id:
                return spec, source
        raise RecordNotFoundError(_WHAT, limit_id)

    def create(self, document: object, *, actor: str) -> RateLimitSpec:
        live = self._live
        spec = validate_rate_limit(live.config, document)
        with live.lock:
            if any(existing.id == spec.id for existing, _ in self.all()):
                raise RecordConflictError(f"The rate limit id {spec.id!r} is already used.")
            self._repository.save(rate_limit_document(spec), source=API_SOURCE)
            live.api_rate_limits[spec.id] = spec
            live.apply_rate_limits()
        audit.info("rate limit %s created by %s", spec.id, actor)
        return spec

    def update(self, limit_id: str, changes: object, *, actor: str) -> RateLimitSpec:
        """The stored entry with ``changes`` (top-level keys; ``null`` removes one) merged in,
        validated again."""
        if not isinstance(changes, dict):
            raise RecordInvalidError([("", "expected a mapping of the fields to change")])
        if changes.get("id", limit_id) != limit_id:
            raise RecordInvalidError([("id", "the id of a rate limit cannot be changed")])
        live = self._live
        with live.lock:
            document = rate_limit_document(self._api_spec(limit_id))
            for key, value in changes.items():
                if value is None:
                    document.pop(key, None)
                else:
                    document[key] = value
            spec = validate_rate_limit(live.config, document)
            self._repository.save(rate_limit_document(spec), source=API_SOURCE)
            live.api_rate_limits[limit_id] = spec
            live.apply_rate_limits()
        audit.info("rate limit %s updated by %s", limit_id, actor)
        return spec

    def delete(self, limit_id: str, *, actor: str) -> None:
        live = self._live
        with live.lock:
            self._api_spec(limit_id)
            self._repository.delete(limit_id)
            del live.api_rate_limits[limit_id]
            live.apply_rate_limits()
        audit.info("rate limit %s deleted by %s", limit_id, actor)

    def load(self) -> None:
        """Apply the stored runtime rate limits (replacing those applied before)."""
        live = self._live
        configured = {spec.id for spec in live.config.rate_limits}
        with live.lock:
            live.api_rate_limits.clear()
            for document, source in self._repository.documents():
                limit_id = document["id"]
                if source != API_SOURCE:
                    continue
                if limit_id in configured:
                    log.warning(
                        "runtime rate limit %s ignored: the config file now defines one with "
                        "that id (delete the runtime one)",
                        limit_id,
                    )
                    continue
                try:
                    live.api_rate_limits[limit_id] = RateLimitSpec.model_validate(document)
                except ValidationError as error:
                    log.error(
                        "runtime rate limit %s is invalid and is not applied (%d problem(s)); "
                        "delete it (spendgate rate-limits delete %s) and create it again",
                        limit_id,
                        error.error_count(),
                        limit_id,
                    )
            live.apply_rate_limits()

    def _api_spec(self, limit_id: str) -> RateLimitSpec:
        spec, source = self.get(limit_id)
        if source != API_SOURCE:
            raise ConfigManagedError(_WHAT, limit_id, self._live.config.source)
        return spec
