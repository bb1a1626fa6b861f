"""Providers and the routable models they serve."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Capability", "Model", "Provider", "ProviderKind", "Tier"]


class ProviderKind(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    MOCK = "mock"


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


@dataclass(frozen=True, slots=True)
class Model:
    """A routable model id on a provider."""

    id: str
    provider: str
    upstream_id: str = ""
    capabilities: frozenset[Capability] = field(default_factory=frozenset)
    context_window: int | None = None
    max_output_tokens: int | None = None
    cost_tier: Tier = Tier.MEDIUM
    latency_tier: Tier = Tier.MEDIUM
    enabled: bool = True

    @property
    def upstream_model(self) -> str:
        return self.upstream_id or self.id
