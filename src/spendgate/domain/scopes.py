"""Scopes: who a request belongs to. A request carries every scope kind at once."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["EACH_MEMBER", "GLOBAL_MEMBER", "RequestScopes", "ScopeKind", "ScopeRef"]

EACH_MEMBER = "*"
GLOBAL_MEMBER = "global"


class ScopeKind(StrEnum):
    GLOBAL = "global"
    PROJECT = "project"
    PRINCIPAL = "principal"
    API_KEY = "api_key"
    AGENT = "agent"
    SESSION = "session"


@dataclass(frozen=True, slots=True)
class ScopeRef:
    """A policy's target: one member of a kind, or ``*`` for each member separately."""

    kind: ScopeKind
    id: str = GLOBAL_MEMBER

    @property
    def each_member(self) -> bool:
        return self.id == EACH_MEMBER

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"


@dataclass(frozen=True, slots=True)
class RequestScopes:
    """The scopes one request belongs to (from its API key and ``x-spendgate-*`` headers)."""

    project: str | None = None
    principal: str | None = None
    api_key: str | None = None
    agent: str | None = None
    session: str | None = None

    def member(self, kind: ScopeKind) -> str | None:
        """The request's member id for ``kind``; ``None`` when the request has none."""
        if kind is ScopeKind.GLOBAL:
            return GLOBAL_MEMBER
        value: str | None = getattr(self, kind.value)
        return value

    def matched_member(self, ref: ScopeRef) -> str | None:
        """The member a policy scoped by ``ref`` counts this request under, if it applies."""
        member = self.member(ref.kind)
        if member is None:
            return None
        if ref.each_member or ref.id == member:
            return member
        return None
