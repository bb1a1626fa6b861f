"""API keys: who a request is from and what it may do. The secret itself is never held here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from spendgate.domain.scopes import RequestScopes, tenant_of

__all__ = [
    "ADMIN",
    "ADMIN_TOKEN_ENV",
    "APPROVER",
    "OVERRIDE_ROUTING_MODE",
    "PERMISSIONS",
    "ApiKey",
]

# A request may relax the routing mode (e.g. enforced → suggest) only with this permission;
# without it a request header may only make the mode stricter.
OVERRIDE_ROUTING_MODE: Final = "override_routing_mode"
# Full access to the admin API (budgets, pricing, keys, ...).
ADMIN: Final = "admin"
# May approve or deny budget overrides (never the approver's own requests).
APPROVER: Final = "approver"

PERMISSIONS: Final = frozenset({OVERRIDE_ROUTING_MODE, ADMIN, APPROVER})

# The environment variable holding the admin token: full access to the admin API, like a key
# with the admin permission.
ADMIN_TOKEN_ENV: Final = "SPENDGATE_ADMIN_TOKEN"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A client credential's identity. ``key_env`` names the env var holding a config key's
    secret; keys created at runtime have none (their hash lives in the database)."""

    id: str
    principal: str | None = None
    project: str | None = None
    permissions: frozenset[str] = field(default_factory=frozenset)
    models: frozenset[str] | None = None  # None: every model
    key_env: str | None = None

    def has(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def may_relax_mode(self) -> bool:
        return OVERRIDE_ROUTING_MODE in self.permissions

    def allows_model(self, model: str) -> bool:
        return self.models is None or model in self.models

    def scopes(self, agent: str | None = None, session: str | None = None) -> RequestScopes:
        """The request scopes of a call made with this key; ``agent`` and ``session`` as sent
        in its headers, within this key's tenant (``RequestScopes.of``)."""
        return RequestScopes.of(self.project, self.principal, self.id, agent, session)

    @property
    def tenant(self) -> str:
        """Where this key's agent and session ids live: its project, principal or itself."""
        tenant = tenant_of(self.project, self.principal, self.id)
        assert tenant is not None  # a key always has an id
        return tenant
