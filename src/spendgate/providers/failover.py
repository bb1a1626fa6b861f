"""Try candidates in order until one answers, before the first byte reaches the client.

For each candidate: ask its breaker (an open circuit is skipped), then the caller's
``prepare`` callback — which re-checks budgets at that model's price and returns the call
to send (translated for that provider), or None to skip it — then send. A connect error is
retried once on the same provider (the request never left); any other retryable error moves
to the next candidate; a non-retryable one (a 4xx) ends the call. Every outcome that reached
a provider is recorded in its health, exactly once. Once a stream has produced its first
bytes it is returned and failover is over: later errors surface to the caller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

from spendgate.domain.health import HealthBoard, Outcome, Permit, ProviderHealth
from spendgate.domain.pricing import Usage
from spendgate.providers.base import Upstream, UpstreamCall, UpstreamResponse, UpstreamStream
from spendgate.providers.errors import CircuitOpenError, UpstreamError
from spendgate.providers.health_log import HealthLog

__all__ = [
    "Attempt",
    "Failover",
    "FailoverError",
    "FailoverResult",
    "MeteredStream",
    "Prepare",
    "Target",
]


@dataclass(frozen=True, slots=True)
class Target:
    """A candidate: a model id and the provider serving it."""

    model: str
    provider: str


# Called once per candidate before it is tried, with what happened to the candidates before
# it: return the call (body translated for the provider and priced/reserved by the caller) or
# None to skip the candidate. A same-provider retry reuses the prepared call: same model,
# same price.
Prepare = Callable[["Target", "Sequence[Attempt]"], Awaitable[UpstreamCall | None]]


@dataclass(frozen=True, slots=True)
class Attempt:
    """What happened to one candidate (or one retry of it)."""

    target: Target
    outcome: str  # "ok", "skipped_circuit_open", "skipped_by_caller", or an error code
    error: UpstreamError | None = None
    latency_s: float | None = None


R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class FailoverResult(Generic[R]):
    target: Target
    response: R
    attempts: tuple[Attempt, ...]

    @property
    def failed_over(self) -> bool:
        return self.target != self.attempts[0].target


class FailoverError(Exception):
    """No candidate answered. ``last_error`` is the error to report (None when every
    candidate was skipped); ``status`` the HTTP status for the client: the upstream's
    own for a non-retryable 4xx, else 502."""

    def __init__(self, attempts: Sequence[Attempt]) -> None:
        self.attempts = tuple(attempts)
        errors = [a.error for a in self.attempts if a.error is not None]
        self.last_error = errors[-1] if errors else None
        summary = "; ".join(
            f"{a.target.provider}/{a.target.model}: {a.error.message if a.error else a.outcome}"
            for a in self.attempts
        )
        super().__init__(f"all upstream candidates failed ({summary or 'no candidates'})")

    @property
    def status(self) -> int:
        error = self.last_error
        if error is not None and not error.retryable and error.status is not None:
            return error.status
        return 502


class Failover:
    """One per worker: the upstreams by provider id, and their health."""

    def __init__(
        self,
        upstreams: Mapping[str, Upstream],
        health: HealthBoard,
        *,
        clock: Callable[[], float] = time.monotonic,
        connect_retries: int = 1,
        retry_delay_s: float = 0.0,
    ) -> None:
        self.upstreams = upstreams
        self.health = health
        self.clock = clock
        self.connect_retries = connect_retries
        self.retry_delay_s = retry_delay_s
        self.health_log = HealthLog()

    async def send(
        self, targets: Sequence[Target], prepare: Prepare
    ) -> FailoverResult[UpstreamResponse]:
        async def call(upstream: Upstream, request: UpstreamCall) -> UpstreamResponse:
            return await upstream.send(request)

        def latency(response: UpstreamResponse) -> float:
            return response.latency_s

        return await self._run(targets, prepare, call, latency)

    async def stream(
        self, targets: Sequence[Target], prepare: Prepare
    ) -> FailoverResult[MeteredStream]:
        """Open a stream on the first candidate that delivers a first byte. The returned
        stream records the provider's health when it ends (latency: time to first byte)."""
        permits: dict[Target, Permit] = {}

        async def call(upstream: Upstream, request: UpstreamCall) -> UpstreamStream:
            return await upstream.stream(request)

        def latency(stream: UpstreamStream) -> float:
            return stream.ttfb_s

        result = await self._run(targets, prepare, call, latency, permits, defer_success=True)
        metered = MeteredStream(result.response, self, result.target, permits[result.target])
        return FailoverResult(result.target, metered, result.attempts)

    async def _run(
        self,
        targets: Sequence[Target],
        prepare: Prepare,
        call: Callable[[Upstream, UpstreamCall], Awaitable[R]],
        latency: Callable[[R], float],
        permits: dict[Target, Permit] | None = None,
        *,
        defer_success: bool = False,
    ) -> FailoverResult[R]:
        attempts: list[Attempt] = []
        for target in targets:
            health = self.health.get(target.provider)
            permit = self._admit(health)
            if not permit.admitted:
                error = CircuitOpenError(target.provider, health.reason or "circuit open")
                attempts.append(Attempt(target, "skipped_circuit_open", error))
                continue
            recorded = False
            try:
                request = await prepare(target, tuple(attempts))
                if request is None:
                    attempts.append(Attempt(target, "skipped_by_caller"))
                    continue
                upstream = self.upstreams[target.provider]
                retries = self.connect_retries
                while True:
                    started = time.perf_counter()
                    try:
                        response = await call(upstream, request)
                    except UpstreamError as error:
                        elapsed = time.perf_counter() - started
                        attempts.append(Attempt(target, error.reason_code, error, elapsed))
                        if error.outcome is not None:
                            recorded = True
                            self._record(health, error.outcome, elapsed, permit, error.detail)
                        if not error.retryable:
                            raise FailoverError(attempts) from error
                        if error.retry_same_provider and retries > 0:
                            retries -= 1
                            # A retry is a new call through the breaker: it may have opened.
                            permit = self._admit(health)
                            recorded = False
                            if not permit.admitted:
                                break
                            if self.retry_delay_s:
                                await asyncio.sleep(self.retry_delay_s)
                            continue
                        break
                    attempts.append(Attempt(target, "ok", None, latency(response)))
                    if defer_success:
                        assert permits is not None
                        permits[target] = permit
                    else:
                        self._record(health, Outcome.SUCCESS, latency(response), permit)
                    recorded = True
                    return FailoverResult(target, response, tuple(attempts))
            finally:
                if not recorded:
                    health.release(permit)
        raise FailoverError(attempts)

    # Every admission and outcome goes through these two, so that the health log sees each
    # change of a provider's circuit and health.

    def _admit(self, health: ProviderHealth) -> Permit:
        now = self.clock()
        before = health.circuit
        permit = health.admit(now)
        self.health_log.admitted(health, before, now)
        return permit

    def _record(
        self,
        health: ProviderHealth,
        outcome: Outcome,
        latency_s: float | None,
        permit: Permit,
        detail: str = "",
    ) -> None:
        now = self.clock()
        before = health.circuit
        health.record(now, outcome, latency_s, permit=permit, detail=detail)
        self.health_log.recorded(health, before, outcome, latency_s, now)


class MeteredStream:
    """An ``UpstreamStream`` that records its provider's health once, when it ends: a
    failure if it broke mid-way, else a success (also when the client went away: the
    provider was serving fine)."""

    def __init__(
        self, stream: UpstreamStream, failover: Failover, target: Target, permit: Permit
    ) -> None:
        self.stream = stream
        self.target = target
        self._failover = failover
        self._permit = permit
        self._recorded = False

    @property
    def usage(self) -> Usage | None:
        return self.stream.usage

    @property
    def ttfb_s(self) -> float:
        return self.stream.ttfb_s

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.stream.__anext__()
        except StopAsyncIteration:
            self._record(None)
            raise
        except UpstreamError as error:
            self._record(error)
            raise

    def _record(self, error: UpstreamError | None) -> None:
        if self._recorded:
            return
        self._recorded = True
        failover = self._failover
        health = failover.health.get(self.target.provider)
        if error is None or error.outcome is None:
            failover._record(health, Outcome.SUCCESS, self.stream.ttfb_s, self._permit)
        else:
            failover._record(health, error.outcome, self.stream.ttfb_s, self._permit, error.detail)

    async def aclose(self) -> None:
        await self.stream.aclose()
        self._record(None)

    async def __aenter__(self) -> MeteredStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
