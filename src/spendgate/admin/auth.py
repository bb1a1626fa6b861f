"""Who is calling the admin API: the admin token, or an API key with its permissions.

The admin token (``SPENDGATE_ADMIN_TOKEN``) is kept only as its SHA-256 digest and compared in
constant time. API keys come from the gateway's ``KeyRing`` (config and runtime keys alike).
A key with the ``admin`` permission is an admin; any other key may only read, confined to its
own project (or principal, or itself): ``Viewer.confine`` applies that to a query's filters and
refuses — never silently widens or empties — a filter naming someone else; a question about a
request (explain, effective budgets) is about the key's own requests (``request_scopes``).

Agent and session ids are members of a tenant (``domain.scopes``). An id given without one is
read within the viewer's tenant — an admin's: the project or principal it names, or the tenant
of the key it names (a key with a project sends its agents within that project).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from spendgate.domain.keys import ADMIN, APPROVER, ApiKey
from spendgate.domain.scopes import RequestScopes, split_member, tenant_member, tenant_of
from spendgate.gateway.auth import KeyRing, digest, presented_key

__all__ = ["ADMIN_ACTOR", "Viewer", "authenticate"]

ADMIN_ACTOR = "admin-token"

KeyFinder = Callable[[str], "ApiKey | None"]  # a key by id, revoked ones included


def _no_key(key_id: str) -> ApiKey | None:
    return None


@dataclass(frozen=True)
class Viewer:
    actor: str  # "admin-token" or the key id
    key: ApiKey | None  # None for the admin token
    is_admin: bool  # admin token, or key with the "admin" permission
    is_approver: bool
    find_key: KeyFinder = field(default=_no_key, repr=False, compare=False)

    def scope_restriction(self) -> dict[str, str]:
        """{} for admins; else the scope filters this viewer is confined to:
        {"project": key.project} if the key has a project, else {"principal": key.principal},
        else {"api_key": key.id}."""
        if self.is_admin or self.key is None:
            return {}
        if self.key.project:
            return {"project": self.key.project}
        if self.key.principal:
            return {"principal": self.key.principal}
        return {"api_key": self.key.id}

    def confine(self, filters: Mapping[str, str | None]) -> dict[str, str | None]:
        """``filters`` (scope kind → requested id or None) narrowed to this viewer's scope.

        An unset confining filter is set to the viewer's own id; one naming another id raises
        a 403 ``AdminError`` (param ``query.<kind>``). Admins get ``filters`` unchanged."""
        from spendgate.admin.errors import forbidden

        confined = dict(filters)
        for kind, own in self.scope_restriction().items():
            asked = confined.get(kind)
            if asked is not None and asked != own:
                raise forbidden(
                    f"This API key may only read its own {kind} ({own!r}), not {asked!r}.",
                    param=f"query.{kind}",
                )
            confined[kind] = own
        tenant = (
            self._tenant_named(
                confined.get("project"), confined.get("principal"), confined.get("api_key")
            )
            if self.is_admin or self.key is None
            else self.key.tenant
        )
        for kind in ("agent", "session"):
            if kind in confined:
                confined[kind] = _member(tenant, confined[kind])
        return confined

    def request_scopes(self, asked: Mapping[str, str | None], where: str) -> RequestScopes:
        """The scopes of a request this viewer asks about (``asked``: scope kind → id or None;
        agent and session as a client sends them, or as full members). An admin may name any;
        any other key asks about its own requests only: naming another project, principal or
        key is a 403 (param ``<where>.<kind>``)."""
        from spendgate.admin.errors import forbidden

        project, principal, api_key = (asked.get(k) for k in ("project", "principal", "api_key"))
        if self.is_admin or self.key is None:
            tenant = self._tenant_named(project, principal, api_key)
            return RequestScopes(
                project,
                principal,
                api_key,
                _member(tenant, asked.get("agent")),
                _member(tenant, asked.get("session")),
            )
        key = self.key
        for kind, value, own in (
            ("project", project, key.project),
            ("principal", principal, key.principal),
            ("api_key", api_key, key.id),
        ):
            if value is not None and value != own:
                raise forbidden(
                    f"This API key may only ask about its own requests: {kind} {value!r} is "
                    f"not its own ({own!r}).",
                    param=f"{where}.{kind}",
                )
        return key.scopes(asked.get("agent"), asked.get("session"))

    def _tenant_named(
        self, project: str | None, principal: str | None, api_key: str | None
    ) -> str | None:
        """The tenant an admin's question names: its project or principal, else the tenant of
        the key it names (that key's agents are members of its project, not of the key)."""
        if not project and not principal and api_key:
            key = self.find_key(api_key)
            if key is not None:
                return key.tenant
        return tenant_of(project, principal, api_key)

    def can_see(self, scopes: Mapping[str, str | None]) -> bool:
        """Whether a record with these scope ids (kind → id) is within this viewer's reach."""
        return all(scopes.get(kind) == own for kind, own in self.scope_restriction().items())


def _member(tenant: str | None, value: str | None) -> str | None:
    """An agent or session id given to the admin API as its member: a full member as is."""
    if value is None or split_member(value) is not None:
        return value
    return tenant_member(tenant, value)


def authenticate(
    authorization: str | None,
    x_api_key: str | None,
    admin_token_digest: str | None,
    keys: KeyRing,
    find_key: KeyFinder,
) -> Viewer | None:
    """The viewer presenting these headers, or None when the credential is missing or unknown.
    ``find_key`` tells an admin's questions which tenant a key id belongs to."""
    secret = presented_key(authorization, x_api_key)
    if secret is None:
        return None
    if admin_token_digest is not None and hmac.compare_digest(digest(secret), admin_token_digest):
        return Viewer(
            actor=ADMIN_ACTOR, key=None, is_admin=True, is_approver=True, find_key=find_key
        )
    key = keys.authenticate(secret)
    if key is None:
        return None
    return Viewer(
        actor=key.id,
        key=key,
        is_admin=key.has(ADMIN),
        is_approver=key.has(APPROVER) or key.has(ADMIN),
        find_key=find_key,
    )
