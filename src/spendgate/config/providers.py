"""The ``providers`` and ``models`` sections: the upstreams and the models they serve.

Secrets are never in the file: a provider names the environment variable holding its key.
"""

from __future__ import annotations

from pydantic import Field, StrictBool

from spendgate.config.values import EnvName, Id, PositiveInt, PositiveSeconds, Spec, Url
from spendgate.domain.models import Capability, ProviderKind, Tier


class ProviderSpec(Spec):
    id: Id
    kind: ProviderKind
    base_url: Url | None = None
    api_key_env: EnvName | None = None
    max_concurrency: PositiveInt = 64
    timeout_s: PositiveSeconds = 60.0


class ModelSpec(Spec):
    id: Id
    provider: Id
    upstream_id: Id | None = None
    capabilities: list[Capability] = Field(default_factory=list)
    context_window: PositiveInt | None = None
    max_output_tokens: PositiveInt | None = None
    cost_tier: Tier | None = None  # None: derived from the model's price
    latency_tier: Tier = Tier.MEDIUM
    enabled: StrictBool = True
