"""The ``rate_limits`` section: requests and tokens per minute for a key, principal, project
or model (``domain.rate_limits``)."""

from __future__ import annotations

from pydantic import Field, StrictInt, ValidationInfo, field_validator, model_validator

from spendgate.config.errors import invalid
from spendgate.config.values import Id, Spec, non_empty
from spendgate.domain.rate_limits import MAX_PER_MINUTE, RateLimit, RateScopeKind

__all__ = ["RateLimitSpec", "RateScopeSpec"]


class RateScopeSpec(Spec):
    kind: RateScopeKind
    id: Id  # a member id, or '*' for each member separately


class RateLimitSpec(Spec):
    id: Id
    scope: RateScopeSpec
    requests_per_minute: StrictInt | None = Field(default=None, ge=1, le=MAX_PER_MINUTE)
    tokens_per_minute: StrictInt | None = Field(default=None, ge=1, le=MAX_PER_MINUTE)
    models: list[Id] | None = None

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        non_empty(info.field_name or "models", value)
        return value

    @model_validator(mode="after")
    def _some_limit(self) -> RateLimitSpec:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise invalid(
                "a rate limit needs requests_per_minute, tokens_per_minute or both",
                ("requests_per_minute",),
            )
        return self

    def rate_limit(self) -> RateLimit:
        return RateLimit(
            id=self.id,
            scope_kind=self.scope.kind,
            scope_id=self.scope.id,
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            models=None if self.models is None else frozenset(self.models),
        )
