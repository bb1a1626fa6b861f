"""Build a worker's upstreams from the configured ``Provider`` records.

Credentials are read here, once, at startup: from each provider's ``api_key_env``. A named
but unset variable does not stop startup; the provider is reported in ``problems`` and every
call to it fails with ``UpstreamNotConfiguredError`` (so failover moves on without counting
it against the provider's health).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from types import TracebackType

from spendgate.domain.health import HealthBoard, HealthConfig
from spendgate.domain.models import Provider, ProviderKind
from spendgate.providers.anthropic import DEFAULT_ANTHROPIC_BASE_URL, AnthropicUpstream
from spendgate.providers.azure import AzureUpstream
from spendgate.providers.base import HttpUpstream
from spendgate.providers.failover import Failover
from spendgate.providers.gemini import DEFAULT_GEMINI_BASE_URL, GeminiUpstream
from spendgate.providers.mock import DEFAULT_MOCK_BASE_URL, MockUpstream
from spendgate.providers.openai import DEFAULT_OPENAI_BASE_URL, OpenAIUpstream
from spendgate.providers.session import SessionPool

__all__ = ["DEFAULT_BASE_URLS", "UpstreamRegistry", "build_upstream", "health_config_for"]

_KINDS: dict[ProviderKind, type[HttpUpstream]] = {
    ProviderKind.OPENAI: OpenAIUpstream,
    ProviderKind.ANTHROPIC: AnthropicUpstream,
    ProviderKind.MOCK: MockUpstream,
    ProviderKind.AZURE: AzureUpstream,
    ProviderKind.GEMINI: GeminiUpstream,
}
# Where a provider without base_url is called (azure has none: its base_url is required).
DEFAULT_BASE_URLS: dict[ProviderKind, str] = {
    ProviderKind.OPENAI: DEFAULT_OPENAI_BASE_URL,
    ProviderKind.ANTHROPIC: DEFAULT_ANTHROPIC_BASE_URL,
    ProviderKind.MOCK: DEFAULT_MOCK_BASE_URL,
    ProviderKind.GEMINI: DEFAULT_GEMINI_BASE_URL,
}


def build_upstream(
    provider: Provider, pool: SessionPool, env: Mapping[str, str] | None = None
) -> HttpUpstream:
    env = os.environ if env is None else env
    credential: str | None = None
    problem: str | None = None
    if provider.api_key_env:
        credential = env.get(provider.api_key_env) or None
        if credential is None:
            problem = f"environment variable {provider.api_key_env} is not set"
    return _KINDS[provider.kind](provider, pool, credential, problem=problem)


def health_config_for(provider: Provider, base: HealthConfig) -> HealthConfig:
    """A probe can rightly take up to the provider's timeout: only one that outlived it
    (with margin) counts as lost."""
    return replace(base, probe_timeout_s=max(base.probe_timeout_s, 2 * provider.timeout_s))


class UpstreamRegistry(Mapping[str, HttpUpstream]):
    """The upstreams of one worker process, by provider id, sharing one ``SessionPool``,
    with their ``HealthBoard`` and a ``Failover`` over them. Create it in the worker (after
    any fork) and ``close()`` it on shutdown."""

    def __init__(
        self,
        providers: Iterable[Provider],
        *,
        env: Mapping[str, str] | None = None,
        health_config: HealthConfig | None = None,
        pool: SessionPool | None = None,
    ) -> None:
        providers = tuple(providers)
        self.pool = pool or SessionPool(limit=sum(p.max_concurrency for p in providers) or 100)
        self._upstreams = {p.id: build_upstream(p, self.pool, env) for p in providers}
        base = health_config or HealthConfig()
        self.health = HealthBoard(
            self._upstreams,
            base,
            configs={p.id: health_config_for(p, base) for p in providers},
        )
        self.failover = Failover(self._upstreams, self.health)

    @property
    def problems(self) -> dict[str, str]:
        """Misconfigured providers and why (never the credential)."""
        return {pid: up.problem for pid, up in self._upstreams.items() if up.problem}

    def __getitem__(self, provider_id: str) -> HttpUpstream:
        return self._upstreams[provider_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._upstreams)

    def __len__(self) -> int:
        return len(self._upstreams)

    async def close(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> UpstreamRegistry:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
