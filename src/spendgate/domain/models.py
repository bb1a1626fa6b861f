"""Providers and the routable models they serve."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Capability", "Deployment", "Model", "Provider", "ProviderKind", "Tier"]


class ProviderKind(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    MOCK = "mock"
    AZURE = "azure"  # Azure OpenAI: deployment URLs, api-version, api-key header
    GEMINI = "gemini"  # Google Gemini's OpenAI-compatible endpoint


class Capability(StrEnum):
    JSON = "json"
    VISION = "vision"
    TOOLS = "tools"
    # An embeddings model (``POST /v1/embeddings``): it serves only embeddings requests, and
    # embeddings requests go only to such models (docs/endpoints.md).
    EMBEDDINGS = "embeddings"


class Tier(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _TIER_RANK[self]


_TIER_RANK = {Tier.LOW: 0, Tier.MEDIUM: 1, Tier.HIGH: 2}


@dataclass(frozen=True, slots=True)
class Provider:
    """An upstream API. The credential itself is never held here: only the env var's name."""

    id: str
    kind: ProviderKind
    base_url: str | None = None
    api_key_env: str | None = None
    max_concurrency: int = 64
    timeout_s: float = 60.0
    api_version: str | None = None  # Azure OpenAI's ``api-version`` query parameter


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a model is served: a provider, the id it knows the model by (an Azure
    deployment name, a vendor's model name; empty: the model's own id) and a weight, the
    share of the model's traffic it gets among its healthy deployments."""

    provider: str
    upstream_id: str = ""
    weight: int = 1

    def __post_init__(self) -> None:
        if self.weight < 1:
            raise ValueError(f"a deployment's weight must be positive (got {self.weight})")


@dataclass(frozen=True, slots=True)
class Model:
    """A routable model id, served by one or more deployments.

    Give either ``deployments`` or the single-deployment shorthand ``provider`` /
    ``upstream_id``. Either way ``deployments`` ends up non-empty and ``provider`` /
    ``upstream_id`` name the first (primary) deployment: what a view that shows one provider
    per model shows. Routing, failover and health use ``deployments``.
    """

    id: str
    provider: str = ""
    upstream_id: str = ""
    capabilities: frozenset[Capability] = field(default_factory=frozenset)
    context_window: int | None = None
    max_output_tokens: int | None = None
    cost_tier: Tier = Tier.MEDIUM
    latency_tier: Tier = Tier.MEDIUM
    enabled: bool = True
    deployments: tuple[Deployment, ...] = ()

    def __post_init__(self) -> None:
        if not self.deployments:
            if not self.provider:
                raise ValueError(f"model {self.id} needs a provider or deployments")
            object.__setattr__(self, "deployments", (Deployment(self.provider, self.upstream_id),))
            return
        primary = self.deployments[0]
        if self.provider and (self.provider, self.upstream_id) != (
            primary.provider,
            primary.upstream_id,
        ):
            raise ValueError(f"model {self.id}: give deployments or provider, not both")
        object.__setattr__(self, "provider", primary.provider)
        object.__setattr__(self, "upstream_id", primary.upstream_id)

    @property
    def upstream_model(self) -> str:
        """The primary deployment's upstream id."""
        return self.upstream_id or self.id

    def deployment_on(self, provider: str) -> Deployment | None:
        return next((d for d in self.deployments if d.provider == provider), None)

    def upstream_model_on(self, provider: str) -> str:
        """The id the deployment on ``provider`` knows this model by."""
        deployment = self.deployment_on(provider)
        if deployment is None:
            raise KeyError(f"model {self.id} has no deployment on provider {provider}")
        return deployment.upstream_id or self.id
