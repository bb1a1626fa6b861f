"""Typed upstream errors, and redaction of anything credential-like in their messages.

Classification decides what happens next: ``retryable`` errors move on to the next
candidate (connect errors are first retried once on the same provider, since the request
never left); a non-retryable error (a 4xx other than 429) ends the call, because the request
itself is at fault and another provider would refuse it too. ``outcome`` is what the health
tracker records; None means the provider was never reached and its health is unaffected.
``may_have_billed`` tells whether the provider may have processed (and billed) the request:
a timeout, a broken connection or an unreadable answer after the request was sent, but never
a connect error, a call that was not made, or an error status (providers do not bill those).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import aiohttp
import orjson

from spendgate.domain.health import Outcome

__all__ = [
    "CircuitOpenError",
    "UpstreamBusyError",
    "UpstreamClientError",
    "UpstreamConnectError",
    "UpstreamConnectTimeoutError",
    "UpstreamDisconnectedError",
    "UpstreamError",
    "UpstreamNotConfiguredError",
    "UpstreamProtocolError",
    "UpstreamRateLimitedError",
    "UpstreamServerError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "error_from_exception",
    "error_from_response",
    "redact",
]


class UpstreamError(Exception):
    """An upstream call failed. ``message`` is safe to log and show: redacted."""

    retryable: ClassVar[bool] = True
    retry_same_provider: ClassVar[bool] = False
    outcome: ClassVar[Outcome | None] = Outcome.ERROR
    reason_code: ClassVar[str] = "upstream_error"
    # The request may have been sent before the error (so it may have been processed).
    sent: ClassVar[bool] = False

    def __init__(
        self,
        provider: str,
        message: str,
        status: int | None = None,
        *,
        error_type: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.message = message
        self.status = status
        self.error_type = error_type  # the upstream's own error type, when it sent one
        self.retry_after_s = retry_after_s

    @property
    def detail(self) -> str:
        """Short text for health reasons: "HTTP 503", "timeout", "connect error"."""
        return f"HTTP {self.status}" if self.status is not None else self.reason_code

    @property
    def may_have_billed(self) -> bool:
        """The provider may have processed the request: it was sent, and no error status
        came back (an error status is an answer providers do not bill)."""
        return self.sent and self.status is None


class UpstreamConnectError(UpstreamError):
    """No connection could be made: the request was never sent, so retrying is safe."""

    retry_same_provider = True
    reason_code = "connect_error"


class UpstreamTimeoutError(UpstreamError):
    outcome = Outcome.TIMEOUT
    reason_code = "timeout"
    sent = True


class UpstreamConnectTimeoutError(UpstreamTimeoutError):
    """No connection within the timeout: the request was never sent."""

    reason_code = "connect_timeout"
    sent = False


class UpstreamDisconnectedError(UpstreamError):
    """The connection broke after the request was sent (it may have been processed)."""

    reason_code = "disconnected"
    sent = True


class UpstreamProtocolError(UpstreamError):
    """The upstream answered with something that is not the API's response shape."""

    reason_code = "bad_response"
    sent = True


class UpstreamRateLimitedError(UpstreamError):
    reason_code = "rate_limited"


class UpstreamServerError(UpstreamError):
    reason_code = "server_error"


class UpstreamClientError(UpstreamError):
    """A 4xx other than 429: the request is at fault; the provider is fine."""

    retryable = False
    outcome = Outcome.CLIENT_ERROR
    reason_code = "client_error"


class UpstreamUnavailableError(UpstreamError):
    """The provider was not called at all; try the next one, its health is unaffected."""

    outcome = None
    reason_code = "unavailable"


class UpstreamNotConfiguredError(UpstreamUnavailableError):
    reason_code = "not_configured"


class UpstreamBusyError(UpstreamUnavailableError):
    """This worker already has ``max_concurrency`` calls in flight to the provider."""

    reason_code = "busy"


class CircuitOpenError(UpstreamUnavailableError):
    reason_code = "circuit_open"


# -- redaction -----------------------------------------------------------------------------

_REDACTED = "[redacted]"
_SECRET_PATTERNS = re.compile(
    "|".join(
        (
            # Vendor key shapes: OpenAI / Anthropic (sk-, sk-proj-, sk-ant-), AWS, GitHub,
            # Slack, Google.
            r"\bsk-[A-Za-z0-9_\-]{8,}",
            r"\bAKIA[0-9A-Z]{16}\b",
            r"\bgh[pousr]_[A-Za-z0-9]{20,}",
            r"\bxox[abpr]-[A-Za-z0-9\-]{10,}",
            r"\bAIza[0-9A-Za-z_\-]{20,}",
            # Schemes and assignments that announce a secret.
            r"(?i:\bbearer\s+[A-Za-z0-9._~+/=\-]{8,})",
            r"(?<=[\"'\s?&,{(])(?i:api[_-]?key|x-api-key|access[_-]?token|token|secret|"
            r"password|authorization)[\"']?\s*[:=]\s*[\"']?(?i:(?:bearer|basic)\s+)?"
            r"[^\s\"',&}]{6,}",
            # Long opaque tokens of mixed letters and digits (≥ 40 chars: longer than the
            # request ids providers put in error messages, which stay readable).
            r"\b(?=[A-Za-z0-9_\-]*[0-9])(?=[A-Za-z0-9_\-]*[A-Za-z])[A-Za-z0-9_\-]{40,}\b",
        )
    )
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secrets and anything that looks like a credential masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, _REDACTED)
    return _SECRET_PATTERNS.sub(_REDACTED, " " + text)[1:]


# -- classification ------------------------------------------------------------------------

_MAX_MESSAGE = 500


def _message_from_body(body: bytes) -> tuple[str, str | None]:
    """The upstream's error message and type, from an OpenAI or Anthropic error envelope."""
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None  # not JSON: the raw body is the message
    if isinstance(parsed, list) and parsed:
        parsed = parsed[0]  # Gemini's OpenAI-compatible endpoint wraps its errors in a list
    error = parsed.get("error") if isinstance(parsed, Mapping) else None
    if isinstance(error, Mapping):
        kind = error.get("type")
        return str(error.get("message", ""))[:_MAX_MESSAGE], kind if isinstance(kind, str) else None
    if isinstance(error, str):
        return error[:_MAX_MESSAGE], None
    return body[:_MAX_MESSAGE].decode("utf-8", "replace").strip(), None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from model APIs, ignored


def error_from_response(
    provider: str,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Iterable[str] = (),
) -> UpstreamError:
    text, error_type = _message_from_body(body)
    message = redact(text or f"HTTP {status}", secrets)
    kind: type[UpstreamError]
    if status == 429:
        kind = UpstreamRateLimitedError
    elif status >= 500:
        kind = UpstreamServerError
    elif status >= 400:
        kind = UpstreamClientError
    else:
        kind = UpstreamProtocolError
    return kind(
        provider,
        message,
        status,
        error_type=error_type,
        retry_after_s=_retry_after(headers),
    )


def error_from_exception(
    provider: str, exc: BaseException, secrets: Iterable[str] = ()
) -> UpstreamError:
    """An aiohttp / asyncio exception as a typed error. Its text may contain the URL (some
    APIs take keys in the query string): redacted too."""
    message = redact(str(exc) or type(exc).__name__, secrets)
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamConnectTimeoutError(provider, message or "connect timed out")
    if isinstance(exc, TimeoutError):  # includes aiohttp's ServerTimeoutError
        return UpstreamTimeoutError(provider, message or "timed out")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamConnectError(provider, message)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return UpstreamDisconnectedError(provider, message)
    # Payload and response errors (aiohttp.ClientPayloadError / ClientResponseError), and
    # anything else: the upstream's answer was not usable.
    return UpstreamProtocolError(provider, message)
