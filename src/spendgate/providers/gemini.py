"""Google Gemini through its OpenAI-compatible endpoint.

``POST {base_url}/chat/completions`` with ``Authorization: Bearer <Gemini API key>``; the
default base is Google's ``…/v1beta/openai``. Requests and responses are OpenAI's (usage
included). Its streams may carry ``usage`` on every chunk, cumulative: spendgate keeps the
last one seen, so nothing is counted twice.
"""

from __future__ import annotations

from spendgate.domain.requests import Protocol
from spendgate.providers.base import HttpUpstream

__all__ = ["DEFAULT_GEMINI_BASE_URL", "GeminiUpstream"]

DEFAULT_GEMINI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta/openai"

# The path of each protocol under the base URL: Gemini's OpenAI-compatible endpoint has
# chat and embeddings, but neither the Responses API nor legacy completions.
_PATHS: dict[Protocol, str] = {
    Protocol.OPENAI: "/chat/completions",
    Protocol.EMBEDDINGS: "/embeddings",
}


class GeminiUpstream(HttpUpstream):
    protocols = frozenset(_PATHS)

    def url(self, protocol: Protocol) -> str:
        base = (self.provider.base_url or DEFAULT_GEMINI_BASE_URL).rstrip("/")
        return f"{base}{_PATHS[protocol]}"
