"""Who is calling the admin API: the admin token, or an API key with its permissions.

The admin token (``SPENDGATE_ADMIN_TOKEN``) is kept only as its SHA-256 digest and compared in
constant time. API keys come from the gateway's ``KeyRing`` (config and runtime keys alike).
A key with the ``admin`` permission is an admin; any other key may only read, confined to its
own project (or principal, or itself): ``Viewer.confine`` applies that to a query's filters and
refuses — never silently widens or empties — a filter naming someone else.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from spendgate.domain.keys import ADMIN, APPROVER, ApiKey
from spendgate.gateway.auth import KeyRing, digest, presented_key

__all__ = ["ADMIN_ACTOR", "Viewer", "authenticate"]

ADMIN_ACTOR = "admin-token"


@dataclass(frozen=True)
class Viewer:
    actor: str  # "admin-token" or the key id
    key: ApiKey | None  # None for the admin token
    is_admin: bool  # admin token, or key with the "admin" permission
    is_approver: bool

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
        return confined

    def can_see(self, scopes: Mapping[str, str | None]) -> bool:
        """Whether a record with these scope ids (kind → id) is within this viewer's reach."""
        return all(scopes.get(kind) == own for kind, own in self.scope_restriction().items())


def authenticate(
    authorization: str | None,
    x_api_key: str | None,
    admin_token_digest: str | None,
    keys: KeyRing,
) -> Viewer | None:
    """The viewer presenting these headers, or None when the credential is missing or unknown."""
    secret = presented_key(authorization, x_api_key)
    if secret is None:
        return None
    if admin_token_digest is not None and hmac.compare_digest(digest(secret), admin_token_digest):
        return Viewer(actor=ADMIN_ACTOR, key=None, is_admin=True, is_approver=True)
    key = keys.authenticate(secret)
    if key is None:
        return None
    return Viewer(
        actor=key.id,
        key=key,
        is_admin=key.has(ADMIN),
        is_approver=key.has(APPROVER) or key.has(ADMIN),
    )
