"""OpenAI-compatible upstreams (OpenAI, vLLM, Ollama, Azure-style gateways, …)."""

from __future__ import annotations

from spendgate.domain.requests import Protocol
from spendgate.providers.base import HttpUpstream

__all__ = ["DEFAULT_OPENAI_BASE_URL", "OPENAI_PATHS", "OpenAIUpstream"]

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
# Each OpenAI request shape's path under the base URL.
OPENAI_PATHS = {
    Protocol.OPENAI: "chat/completions",
    Protocol.RESPONSES: "responses",
    Protocol.EMBEDDINGS: "embeddings",
    Protocol.COMPLETIONS: "completions",
}


class OpenAIUpstream(HttpUpstream):
    """``POST {base_url}/chat/completions`` (``/responses`` for the Responses API) with
    ``Authorization: Bearer``. As in the official SDK, ``base_url`` includes the version
    path (``…/v1``)."""

    protocols = frozenset(OPENAI_PATHS)

    def url(self, protocol: Protocol) -> str:
        base = (self.provider.base_url or DEFAULT_OPENAI_BASE_URL).rstrip("/")
        return f"{base}/{OPENAI_PATHS[protocol]}"
