"""Anthropic Messages API upstreams."""

from __future__ import annotations

from spendgate.domain.requests import Protocol
from spendgate.providers.base import HttpUpstream

__all__ = ["ANTHROPIC_VERSION", "DEFAULT_ANTHROPIC_BASE_URL", "AnthropicUpstream", "messages_url"]

DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"


def messages_url(base_url: str) -> str:
    """``/v1/messages`` under ``base_url``; a base already ending in ``/v1`` (the OpenAI
    convention, used by some config files) is accepted too."""
    base = base_url.rstrip("/")
    return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"


class AnthropicUpstream(HttpUpstream):
    """``POST {base_url}/v1/messages`` with ``x-api-key`` and ``anthropic-version``. As in
    the official SDK, ``base_url`` is the host root (``https://api.anthropic.com``)."""

    protocols = frozenset({Protocol.ANTHROPIC})

    def url(self, protocol: Protocol) -> str:
        return messages_url(self.provider.base_url or DEFAULT_ANTHROPIC_BASE_URL)

    def count_tokens_url(self) -> str:
        """Anthropic's token counting (free, exact for its models)."""
        return self.url(Protocol.ANTHROPIC) + "/count_tokens"

    def auth_headers(self, credential: str | None) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if credential:
            headers["x-api-key"] = credential
        return headers
