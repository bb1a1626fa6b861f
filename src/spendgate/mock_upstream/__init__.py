"""A fake LLM provider speaking the OpenAI and Anthropic HTTP APIs (``spendgate mock-upstream``).

Used by the demo, the tests and the benchmarks as the upstream behind the gateway: real HTTP,
non-streamed and SSE answers, deterministic text with usage consistent with it, tool calls,
and failure injection. See docs/mock-upstream.md.
"""

from __future__ import annotations

from spendgate.mock_upstream.options import DEFAULT_MODELS, MockOptions, MockOverrides
from spendgate.mock_upstream.runner import MockUpstream, MockUpstreamThread
from spendgate.mock_upstream.server import MockStats, RecordedRequest, fingerprint
from spendgate.mock_upstream.textgen import IMAGE_TOKENS, MESSAGE_OVERHEAD, text_tokens

__all__ = [
    "DEFAULT_MODELS",
    "IMAGE_TOKENS",
    "MESSAGE_OVERHEAD",
    "MockOptions",
    "MockOverrides",
    "MockStats",
    "MockUpstream",
    "MockUpstreamThread",
    "RecordedRequest",
    "fingerprint",
    "text_tokens",
]
