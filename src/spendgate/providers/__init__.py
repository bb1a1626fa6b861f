"""Upstream adapters: one pooled aiohttp session per worker, a client per provider kind,
typed errors, and failover with health tracking (``spendgate.domain.health``)."""

from spendgate.providers.anthropic import AnthropicUpstream
from spendgate.providers.base import (
    HttpUpstream,
    Upstream,
    UpstreamCall,
    UpstreamResponse,
    UpstreamStream,
)
from spendgate.providers.errors import (
    CircuitOpenError,
    UpstreamBusyError,
    UpstreamClientError,
    UpstreamConnectError,
    UpstreamConnectTimeoutError,
    UpstreamDisconnectedError,
    UpstreamError,
    UpstreamNotConfiguredError,
    UpstreamProtocolError,
    UpstreamRateLimitedError,
    UpstreamServerError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    redact,
)
from spendgate.providers.failover import (
    Attempt,
    Failover,
    FailoverError,
    FailoverResult,
    MeteredStream,
    Prepare,
    Target,
)
from spendgate.providers.mock import MockUpstream
from spendgate.providers.openai import OpenAIUpstream
from spendgate.providers.registry import UpstreamRegistry, build_upstream
from spendgate.providers.session import SessionPool

__all__ = [
    "AnthropicUpstream",
    "Attempt",
    "CircuitOpenError",
    "Failover",
    "FailoverError",
    "FailoverResult",
    "HttpUpstream",
    "MeteredStream",
    "MockUpstream",
    "OpenAIUpstream",
    "Prepare",
    "SessionPool",
    "Target",
    "Upstream",
    "UpstreamBusyError",
    "UpstreamCall",
    "UpstreamClientError",
    "UpstreamConnectError",
    "UpstreamConnectTimeoutError",
    "UpstreamDisconnectedError",
    "UpstreamError",
    "UpstreamNotConfiguredError",
    "UpstreamProtocolError",
    "UpstreamRateLimitedError",
    "UpstreamRegistry",
    "UpstreamResponse",
    "UpstreamServerError",
    "UpstreamStream",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "build_upstream",
    "redact",
]
