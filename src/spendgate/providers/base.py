"""What every upstream client is: the call, the response, the stream, and the HTTP core.

I/O lives here (aiohttp); the protocol details (URL, credential headers) are in the
per-kind modules. Nothing here records health: that is the failover helper's job, so a
call is counted exactly once whichever way it ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from typing import Protocol as TypingProtocol

import aiohttp
import orjson

from spendgate.domain.models import Provider
from spendgate.domain.pricing import Usage
from spendgate.domain.requests import Protocol
from spendgate.domain.translate import (
    StreamObserver,
    usage_from_anthropic,
    usage_from_openai,
    usage_from_responses,
)
from spendgate.providers.errors import (
    UpstreamBusyError,
    UpstreamError,
    UpstreamNotConfiguredError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
    error_from_exception,
    error_from_response,
)
from spendgate.providers.session import SessionPool

__all__ = ["HttpUpstream", "Upstream", "UpstreamCall", "UpstreamResponse", "UpstreamStream"]

# TCP connect is bounded separately from the whole call: a dead host should fail over in
# seconds, not after the provider's full timeout_s.
_CONNECT_TIMEOUT_S = 10.0
# How each protocol's answer reports its usage.
_USAGE_OF = {
    Protocol.OPENAI: usage_from_openai,
    Protocol.ANTHROPIC: usage_from_anthropic,
    Protocol.RESPONSES: usage_from_responses,
}


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One request to send, already in the upstream's protocol (translated if needed) and
    naming the upstream's model id. ``raw`` is a pre-encoded body sent byte for byte."""

    protocol: Protocol
    body: Mapping[str, Any] | None = None
    raw: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float | None = None  # None: the provider's timeout_s

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.body is None:
            raise ValueError("an UpstreamCall needs a body or raw bytes")
        return orjson.dumps(self.body)


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    provider: str
    protocol: Protocol
    status: int
    headers: Mapping[str, str]
    body: dict[str, Any]
    raw: bytes  # the body as received, for byte-for-byte pass-through
    usage: Usage | None  # None: the upstream reported none
    latency_s: float


class Upstream(TypingProtocol):
    """An async client of one provider."""

    provider: Provider
    protocols: frozenset[Protocol]  # request shapes it accepts without translation

    async def send(self, call: UpstreamCall) -> UpstreamResponse: ...

    async def stream(self, call: UpstreamCall) -> UpstreamStream: ...


class UpstreamStream:
    """An open SSE response whose first bytes have already arrived (so failing over is
    still possible until it is returned). Iterate it for the raw chunks, exactly as the
    upstream sent them; close it (or use ``async with``) to free the connection."""

    def __init__(
        self,
        provider: str,
        protocol: Protocol,
        response: aiohttp.ClientResponse,
        first: bytes,
        started: float,
        ttfb_s: float,
        release: asyncio.Semaphore,
        secrets: tuple[str, ...],
    ) -> None:
        self.provider = provider
        self.protocol = protocol
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers
        self.ttfb_s = ttfb_s
        self.observer = StreamObserver(protocol)
        self.bytes_received = 0
        self.complete = False  # the upstream ended the stream normally
        self._response = response
        self._first: bytes | None = first
        self._started = started
        self._semaphore: asyncio.Semaphore | None = release
        self._secrets = secrets
        self.elapsed_s = ttfb_s

    @property
    def usage(self) -> Usage | None:
        return self.observer.usage

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._first is not None:
            chunk, self._first = self._first, None
        else:
            if self._semaphore is None:
                raise StopAsyncIteration
            try:
                chunk = await self._response.content.readany()
            except BaseException as exc:
                await self.aclose()
                if isinstance(exc, Exception):
                    raise error_from_exception(self.provider, exc, self._secrets) from None
                raise
            if not chunk:
                self.complete = True
                self.observer.close()
                await self.aclose()
                raise StopAsyncIteration
        self.bytes_received += len(chunk)
        self.observer.feed(chunk)
        return chunk

    async def aclose(self) -> None:
        if self._semaphore is not None:
            self.elapsed_s = time.perf_counter() - self._started
            semaphore, self._semaphore = self._semaphore, None
            self._response.release()
            semaphore.release()

    @property
    def closed(self) -> bool:
        return self._semaphore is None

    async def __aenter__(self) -> UpstreamStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class HttpUpstream:
    """The HTTP core shared by every kind: pooled session, per-provider concurrency limit,
    timeouts, error classification. Subclasses give the URL and credential headers."""

    protocols: frozenset[Protocol] = frozenset({Protocol.OPENAI})

    def __init__(
        self,
        provider: Provider,
        pool: SessionPool,
        credential: str | None,
        *,
        problem: str | None = None,
    ) -> None:
        self.provider = provider
        self.pool = pool
        self.problem = problem  # set when the provider is misconfigured (e.g. key unset)
        self._secrets: tuple[str, ...] = (credential,) if credential else ()
        self._headers = {"content-type": "application/json", **self.auth_headers(credential)}
        self._semaphore = asyncio.Semaphore(provider.max_concurrency)
        # Built once: a ClientTimeout per call showed in the profile.
        self._timeout = self._call_timeout(provider.timeout_s)

    @staticmethod
    def _call_timeout(timeout_s: float) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=timeout_s, sock_connect=min(timeout_s, _CONNECT_TIMEOUT_S)
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """The credential, for redaction by anything else that talks to this provider."""
        return self._secrets

    def credential_headers(self) -> dict[str, str]:
        """The headers this upstream authenticates with (for discovery and connection tests)."""
        return self.auth_headers(self._secrets[0] if self._secrets else None)

    # -- per kind -------------------------------------------------------------------------

    def url(self, protocol: Protocol) -> str:
        raise NotImplementedError

    def call_url(self, call: UpstreamCall) -> str:
        """Where ``call`` goes; a kind whose URL names the model (Azure) overrides this."""
        return self.url(call.protocol)

    def auth_headers(self, credential: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {credential}"} if credential else {}

    # -- calls ----------------------------------------------------------------------------

    def _check(self, call: UpstreamCall) -> None:
        if self.problem is not None:
            raise UpstreamNotConfiguredError(self.provider.id, self.problem)
        if call.protocol not in self.protocols:
            raise ValueError(
                f"provider {self.provider.id} ({self.provider.kind}) does not speak "
                f"{call.protocol}: translate the request first"
            )

    def _headers_for(self, call: UpstreamCall) -> dict[str, str]:
        if not call.headers:
            return self._headers
        return {**call.headers, **self._headers}  # never let a caller override credentials

    async def _acquire(self, timeout_s: float) -> None:
        if not self._semaphore.locked():  # the common case: no timer to arm
            await self._semaphore.acquire()
            return
        try:
            async with asyncio.timeout(timeout_s):
                await self._semaphore.acquire()
        except TimeoutError:
            raise UpstreamBusyError(
                self.provider.id,
                f"{self.provider.max_concurrency} calls already in flight",
            ) from None

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        self._check(call)
        timeout_s = call.timeout_s or self.provider.timeout_s
        payload = call.payload()
        await self._acquire(timeout_s)
        started = time.perf_counter()
        try:
            timeout = self._timeout if call.timeout_s is None else self._call_timeout(timeout_s)
            async with self.pool.session().post(
                self.call_url(call),
                data=payload,
                headers=self._headers_for(call),
                timeout=timeout,
            ) as response:
                raw = await response.read()
                status = response.status
                headers = response.headers
        except UpstreamError:
            raise
        except Exception as exc:
            raise error_from_exception(self.provider.id, exc, self._secrets) from None
        finally:
            self._semaphore.release()
        latency = time.perf_counter() - started
        if status >= 300:
            raise error_from_response(self.provider.id, status, raw, headers, self._secrets)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise UpstreamProtocolError(self.provider.id, "response body is not a JSON object")
        usage = _USAGE_OF.get(call.protocol, usage_from_openai)(body)
        return UpstreamResponse(
            self.provider.id, call.protocol, status, headers, body, raw, usage, latency
        )

    async def stream(self, call: UpstreamCall) -> UpstreamStream:
        """Send a streaming call; return once its first bytes have arrived (within the
        provider's timeout). Errors before that raise, so the caller may fail over."""
        self._check(call)
        timeout_s = call.timeout_s or self.provider.timeout_s
        payload = call.payload()
        await self._acquire(timeout_s)
        started = time.perf_counter()
        response: aiohttp.ClientResponse | None = None
        try:
            # No total timeout for a stream (it may rightly run for minutes): the first
            # byte must come within timeout_s, and then no gap between chunks may exceed it.
            timeout = aiohttp.ClientTimeout(
                total=None,
                sock_connect=min(timeout_s, _CONNECT_TIMEOUT_S),
                sock_read=timeout_s,
            )
            async with asyncio.timeout(timeout_s):
                response = await self.pool.session().post(
                    self.call_url(call),
                    data=payload,
                    headers=self._headers_for(call),
                    timeout=timeout,
                )
                if response.status >= 300:
                    raw = await response.read()
                    raise error_from_response(
                        self.provider.id, response.status, raw, response.headers, self._secrets
                    )
                first = await response.content.readany()
            ttfb = time.perf_counter() - started
            if not first:
                raise UpstreamProtocolError(self.provider.id, "stream ended before any data")
        except BaseException as exc:
            if response is not None:
                response.release()
            self._semaphore.release()
            if isinstance(exc, UpstreamError):
                raise
            if isinstance(exc, TimeoutError) and not isinstance(
                exc, aiohttp.ConnectionTimeoutError
            ):
                raise UpstreamTimeoutError(
                    self.provider.id, f"no first byte within {timeout_s:g} s"
                ) from None
            if isinstance(exc, Exception):
                raise error_from_exception(self.provider.id, exc, self._secrets) from None
            raise
        return UpstreamStream(
            self.provider.id,
            call.protocol,
            response,
            first,
            started,
            ttfb,
            self._semaphore,
            self._secrets,
        )
