"""Scopes: who a request belongs to. A request carries every scope kind at once.

Project, principal and API key come from the request's key; agent and session ids come from
request headers, so any client may send any of them. They are therefore members only within
the request's *tenant* — its key's project, else its principal, else the key itself: the
member is ``<tenant>/<id>``, e.g. ``project:acme/indexer``, and one tenant's agent ``x`` is
never another's. The tenant part is ``<kind>:<id>`` with ``%`` and ``/`` escaped (``%25``,
``%2F``), so the first ``/`` always ends it, whatever the client's id holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "EACH_MEMBER",
    "GLOBAL_MEMBER",
    "MAX_MEMBER_LENGTH",
    "RequestScopes",
    "ScopeKind",
    "ScopeRef",
    "member_room",
    "member_tenant",
    "split_member",
    "tenant_member",
    "tenant_of",
]

EACH_MEMBER = "*"
GLOBAL_MEMBER = "global"
# The longest member id a counter or a journaled decision holds (a wider one would be refused
# by a database that checks column widths, and its usage would go uncounted).
MAX_MEMBER_LENGTH = 200


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


# The scope kinds a tenant can be, in order of precedence.
_TENANT_KINDS = (ScopeKind.PROJECT, ScopeKind.PRINCIPAL, ScopeKind.API_KEY)


def tenant_of(project: str | None, principal: str | None, api_key: str | None) -> str | None:
    """The tenant that agent and session ids of a request with these ids belong to."""
    for kind, ident in zip(_TENANT_KINDS, (project, principal, api_key), strict=True):
        if ident:
            return f"{kind.value}:{ident.replace('%', '%25').replace('/', '%2F')}"
    return None


def member_tenant(kind: ScopeKind, member: str, key_tenant: str | None = None) -> str | None:
    """The tenant a policy member of ``kind`` belongs to (None: global). A key's tenant
    depends on the key's project and principal: pass it as ``key_tenant`` when known."""
    if kind is ScopeKind.PROJECT:
        return tenant_of(member, None, None)
    if kind is ScopeKind.PRINCIPAL:
        return tenant_of(None, member, None)
    if kind is ScopeKind.API_KEY:
        return key_tenant or tenant_of(None, None, member)
    if kind in (ScopeKind.AGENT, ScopeKind.SESSION):
        split = split_member(member)
        return None if split is None else split[0]
    return None


def tenant_member(tenant: str | None, local: str | None) -> str | None:
    """The member for the agent or session id ``local`` as sent within ``tenant`` (without a
    tenant, e.g. a what-if that names no key, project or principal: ``local`` itself)."""
    if local is None or tenant is None:
        return local
    return f"{tenant}/{local}"


def member_room(tenant: str | None) -> int:
    """How many characters an agent or session id sent within ``tenant`` may have."""
    return MAX_MEMBER_LENGTH - (len(tenant) + 1 if tenant else 0)


def split_member(member: str) -> tuple[str, str] | None:
    """``(tenant, id as sent)`` of an agent or session member; None if it has no tenant."""
    tenant, slash, local = member.partition("/")
    kind, colon, ident = tenant.partition(":")
    if slash and colon and ident and kind in _TENANT_KINDS:
        return tenant, local
    return None


@dataclass(frozen=True, slots=True)
class RequestScopes:
    """The scopes one request belongs to (from its API key and ``x-spendgate-*`` headers).
    ``agent`` and ``session`` are members, within the tenant (see ``of``)."""

    project: str | None = None
    principal: str | None = None
    api_key: str | None = None
    agent: str | None = None
    session: str | None = None

    @classmethod
    def of(
        cls,
        project: str | None = None,
        principal: str | None = None,
        api_key: str | None = None,
        agent: str | None = None,
        session: str | None = None,
    ) -> RequestScopes:
        """The scopes of a request with these ids, ``agent`` and ``session`` as the client
        sent them (they become members of the request's tenant)."""
        if agent is None and session is None:
            return cls(project, principal, api_key)
        tenant = tenant_of(project, principal, api_key)
        return cls(
            project,
            principal,
            api_key,
            tenant_member(tenant, agent),
            tenant_member(tenant, session),
        )

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
