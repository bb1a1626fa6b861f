"""spendgate's own mock upstream (``spendgate mock-upstream``): it speaks both APIs, so
requests of either protocol reach it untranslated."""

from __future__ import annotations

from spendgate.domain.requests import Protocol
from spendgate.providers.anthropic import messages_url
from spendgate.providers.base import HttpUpstream
from spendgate.providers.openai import OPENAI_PATHS, OpenAIUpstream

__all__ = ["DEFAULT_MOCK_BASE_URL", "MockUpstream"]

DEFAULT_MOCK_BASE_URL = "http://127.0.0.1:9100/v1"
# The mock provider kind needs no secret, but the mock server (like a real provider) refuses
# calls without any credential: send a fixed, non-secret placeholder.
_PLACEHOLDER_CREDENTIAL = "spendgate-mock"


class MockUpstream(HttpUpstream):
    """``{base_url}/chat/completions`` (and OpenAI's other paths) and ``{base_url}/messages``
    (base_url ends in ``/v1``), ``Authorization: Bearer`` with the configured key or a
    placeholder."""

    protocols = frozenset({*OpenAIUpstream.protocols, Protocol.ANTHROPIC})

    def url(self, protocol: Protocol) -> str:
        base = (self.provider.base_url or DEFAULT_MOCK_BASE_URL).rstrip("/")
        if protocol is Protocol.ANTHROPIC:
            return messages_url(base)
        return f"{base}/{OPENAI_PATHS[protocol]}"

    def auth_headers(self, credential: str | None) -> dict[str, str]:
        return super().auth_headers(credential or _PLACEHOLDER_CREDENTIAL)
