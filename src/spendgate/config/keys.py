"""The ``keys`` section: API keys, each naming the environment variable holding its secret."""

from __future__ import annotations

from pydantic import Field, field_validator

from spendgate.config.values import EnvName, Id, Permission, Spec, non_empty


class KeyFields(Spec):
    """What a key may do, shared by config keys and keys created through the admin API."""

    id: Id | None = None
    principal: Id | None = None
    project: Id | None = None
    permissions: list[Permission] = Field(default_factory=list)
    models: list[Id] | None = None  # None: every model

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str] | None) -> list[str] | None:
        non_empty("models", value)
        return value


class KeySpec(KeyFields):
    id: Id
    key_env: EnvName
