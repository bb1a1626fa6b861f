"""Server-wide options of the mock upstream and the per-request ``x-mock-*`` overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

from multidict import CIMultiDictProxy

__all__ = [
    "DEFAULT_MODELS",
    "Controls",
    "MockOptions",
    "MockOverrides",
    "RequestControlError",
    "parse_controls",
]

DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "claude-opus-4",
    "claude-sonnet-4",
    "claude-3-5-haiku",
)


@dataclass(slots=True)
class MockOptions:
    """How the mock behaves. Read on every request, so a test may change a field of a
    running mock (``mock.options.forced_status = 500``) to script a failover scenario."""

    latency_ms: float = 20.0
    """Delay before answering (time to first byte, streamed or not)."""
    error_rate: float = 0.0
    """Fraction of completion requests answered with a 500 in the provider's envelope."""
    stream_chunks: int = 16
    """Number of content deltas a streamed answer is cut into (fewer for short answers)."""
    seed: int = 0
    """Seeds the generated text and the error-injection draw."""
    output_tokens: int = 60
    """Mean answer length; each prompt gets between half and 1.5 times this."""
    chunk_delay_ms: float = 0.0
    """Delay between consecutive SSE events of a stream."""
    models: tuple[str, ...] = field(default=DEFAULT_MODELS)
    """What ``GET /v1/models`` lists (completions accept any model name)."""
    require_auth: bool = True
    """Answer 401 to requests carrying no credential (``Authorization`` / ``x-api-key``)."""
    forced_status: int | None = None
    """In-process scripting: answer every completion request with this error status."""
    history: int = 100
    """How many recent requests ``stats.history`` keeps (0 turns recording off)."""
    reply_text: str | None = None
    """In-process scripting: answer every completion with this text (ASCII) instead of the
    generated one (tool calls excepted)."""
    api_key: str | None = None
    """The only credential accepted (any other gets the API's own auth error); None: any."""

    def __post_init__(self) -> None:
        if self.latency_ms < 0 or self.chunk_delay_ms < 0:
            raise ValueError("latencies must be >= 0")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        if self.stream_chunks < 1:
            raise ValueError("stream_chunks must be >= 1")
        if not 1 <= self.output_tokens <= MAX_OUTPUT_TOKENS:
            raise ValueError(f"output_tokens must be between 1 and {MAX_OUTPUT_TOKENS}")
        if self.forced_status is not None and not 400 <= self.forced_status <= 599:
            raise ValueError("forced_status must be an HTTP error status (400-599)")
        if self.history < 0:
            raise ValueError("history must be >= 0")


class MockOverrides(TypedDict, total=False):
    """Keyword overrides accepted by ``MockUpstream(...)`` / ``MockUpstreamThread(...)``."""

    latency_ms: float
    error_rate: float
    stream_chunks: int
    seed: int
    output_tokens: int
    chunk_delay_ms: float
    models: tuple[str, ...]
    require_auth: bool
    forced_status: int | None
    history: int
    reply_text: str | None
    api_key: str | None


MAX_OUTPUT_TOKENS = 1_000_000
"""Cap of ``x-mock-output-tokens`` (4 MB of text): a typo must not exhaust memory."""


class RequestControlError(ValueError):
    """An ``x-mock-*`` header with an unusable value (answered with a 400)."""


@dataclass(slots=True)
class Controls:
    """Per-request overrides from ``x-mock-*`` headers (``None``: header absent)."""

    status: int | None = None
    latency_ms: float | None = None
    disconnect_after: int | None = None
    end_after: int | None = None
    no_usage: bool = False
    output_tokens: int | None = None
    cached_tokens: int = 0


def parse_controls(headers: CIMultiDictProxy[str]) -> Controls:
    """Read the ``x-mock-*`` headers (C-level case-insensitive lookups: cheap when absent)."""
    status = _int(headers, "x-mock-status", 400, 599)
    latency = headers.get("x-mock-latency-ms")
    try:
        latency_ms = None if latency is None else float(latency)
    except ValueError:
        raise RequestControlError("x-mock-latency-ms must be a number") from None
    if latency_ms is not None and not 0 <= latency_ms < 3_600_000:  # also rejects nan
        raise RequestControlError("x-mock-latency-ms must be between 0 and 3600000")
    return Controls(
        status=status,
        latency_ms=latency_ms,
        disconnect_after=_int(headers, "x-mock-disconnect-after-chunks", 0, None),
        end_after=_int(headers, "x-mock-end-after-chunks", 0, None),
        no_usage=headers.get("x-mock-no-usage", "0") not in ("0", "", "false"),
        output_tokens=_int(headers, "x-mock-output-tokens", 1, MAX_OUTPUT_TOKENS),
        cached_tokens=_int(headers, "x-mock-cached-tokens", 0, None) or 0,
    )


def _int(headers: CIMultiDictProxy[str], name: str, low: int, high: int | None) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise RequestControlError(f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise RequestControlError(f"{name} must be {bound}")
    return value
