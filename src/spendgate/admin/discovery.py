"""Provider connection tests and model discovery: ``GET`` each provider's models endpoint
(OpenAI ``{base}/models``, Anthropic ``{root}/v1/models`` with ``x-api-key`` and
``anthropic-version``) with its configured credential, timing the call.

Admin-only and never on the proxy path, so it uses its own short-lived httpx client rather
than the gateway's pooled sessions. Every error text is redacted of the credential (and of
anything that looks like one) before it leaves this module.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from spendgate.domain.models import Provider, ProviderKind
from spendgate.providers.anthropic import DEFAULT_ANTHROPIC_BASE_URL
from spendgate.providers.base import HttpUpstream
from spendgate.providers.errors import redact
from spendgate.providers.registry import DEFAULT_BASE_URLS
from spendgate.urls import public_url

__all__ = ["DiscoveredModel", "ProbeResult", "models_url", "probe", "probe_all"]

# A connection test should answer quickly even when a provider hangs.
MAX_PROBE_TIMEOUT_S = 15.0
# Anthropic pages its model list; a handful of pages covers every real account.
_MAX_PAGES = 5
_MAX_ERROR = 300


@dataclass(frozen=True)
class DiscoveredModel:
    id: str
    provider: str
    display_name: str | None = None
    owned_by: str | None = None


@dataclass(frozen=True)
class ProbeResult:
    provider: str
    kind: str
    url: str
    ok: bool
    status_code: int | None  # the models endpoint's HTTP status; None: no answer
    credential_accepted: bool | None  # None: not known (no answer, or not a credential error)
    latency_ms: float | None
    error: str | None
    models: tuple[DiscoveredModel, ...] = ()
    tested_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def models_url(provider: Provider) -> str:
    kind, base_url = provider.kind, provider.base_url
    if kind is ProviderKind.ANTHROPIC:
        base = (base_url or DEFAULT_ANTHROPIC_BASE_URL).rstrip("/")
        return f"{base}/models" if base.endswith("/v1") else f"{base}/v1/models"
    if kind is ProviderKind.AZURE:
        # The resource's base models (not its deployments): enough to test the key.
        return f"{(base_url or '').rstrip('/')}/openai/models?api-version={provider.api_version}"
    return f"{(base_url or DEFAULT_BASE_URLS[kind]).rstrip('/')}/models"


def _error_text(body: bytes) -> str:
    try:
        parsed: Any = httpx.Response(200, content=body).json()
    except ValueError:
        return body[:_MAX_ERROR].decode("utf-8", "replace").strip()
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:_MAX_ERROR]
    if isinstance(error, str):
        return error[:_MAX_ERROR]
    return body[:_MAX_ERROR].decode("utf-8", "replace").strip()


def _parse_models(provider: str, payload: Any) -> tuple[list[DiscoveredModel], str | None]:
    """Models of one page, and the id to continue after (Anthropic ``has_more``)."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise ValueError("the answer has no 'data' list of models")
    models = [
        DiscoveredModel(
            id=str(item["id"]),
            provider=provider,
            display_name=item.get("display_name")
            if isinstance(item.get("display_name"), str)
            else None,
            owned_by=item.get("owned_by") if isinstance(item.get("owned_by"), str) else None,
        )
        for item in data
        if isinstance(item, dict) and isinstance(item.get("id"), str | int)
    ]
    more = isinstance(payload, dict) and payload.get("has_more") is True
    last = payload.get("last_id") if more else None
    return models, last if isinstance(last, str) and last else None


async def probe(upstream: HttpUpstream, *, client: httpx.AsyncClient | None = None) -> ProbeResult:
    """Test one provider: is it reachable, is its credential accepted, which models it has."""
    provider = upstream.provider
    url = models_url(provider)
    kind = provider.kind.value
    headers, secrets = upstream.credential_headers(), upstream.secrets

    def result(**fields: Any) -> ProbeResult:
        error = fields.pop("error", None)
        return ProbeResult(
            provider=provider.id,
            kind=kind,
            url=public_url(redact(url, secrets)) or "",
            error=redact(error, secrets) if error else None,
            **fields,
        )

    if upstream.problem is not None:
        return result(
            ok=False,
            status_code=None,
            credential_accepted=False,
            latency_ms=None,
            error=f"not configured: {upstream.problem}",
        )
    timeout = min(provider.timeout_s, MAX_PROBE_TIMEOUT_S)
    own_client = client is None
    http = client or httpx.AsyncClient(timeout=timeout)
    started = time.perf_counter()
    latency: float | None = None
    try:
        found: list[DiscoveredModel] = []
        params: dict[str, str] = (
            {"limit": "1000"} if provider.kind is ProviderKind.ANTHROPIC else {}
        )
        for _ in range(_MAX_PAGES):
            response = await http.get(url, headers=headers, params=params, timeout=timeout)
            if latency is None:
                latency = (time.perf_counter() - started) * 1000
            status = response.status_code
            if status >= 400:
                text = _error_text(response.content) or response.reason_phrase
                return result(
                    ok=False,
                    status_code=status,
                    credential_accepted=False if status in (401, 403) else None,
                    latency_ms=round(latency, 1),
                    error=f"HTTP {status}: {text}",
                )
            try:
                page, after = _parse_models(provider.id, response.json())
            except ValueError as problem:
                return result(
                    ok=False,
                    status_code=status,
                    credential_accepted=True,
                    latency_ms=round(latency, 1),
                    error=f"not a models list: {problem}",
                )
            found += page
            if after is None:
                break
            params = {**params, "after_id": after}
        return result(
            ok=True,
            status_code=200,
            credential_accepted=True,
            latency_ms=round(latency or 0.0, 1),
            error=None,
            models=tuple(found),
        )
    except httpx.HTTPError as error:
        elapsed = (time.perf_counter() - started) * 1000
        reason = str(error) or type(error).__name__
        return result(
            ok=False,
            status_code=None,
            credential_accepted=None,
            latency_ms=round(elapsed, 1),
            error=f"{type(error).__name__}: {reason}",
        )
    finally:
        if own_client:
            await http.aclose()


async def probe_all(upstreams: list[HttpUpstream]) -> list[ProbeResult]:
    """Probe every upstream concurrently (a slow provider does not delay the others)."""
    async with httpx.AsyncClient() as client:
        return list(await asyncio.gather(*(probe(up, client=client) for up in upstreams)))
