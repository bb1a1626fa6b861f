"""Following one proxied call for its span, whatever its route: the gateway wraps the call
(``CallTracer.trace``: its start, its ``traceparent``, the status it answered) and the
governor reports to the same object (``CallRecorder``) the request it planned and every
decision it ended. A context variable ties the two: each request runs in its own task."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Protocol

from spendgate.domain.requests import ChatRequest
from spendgate.domain.routing import RoutingDecision
from spendgate.gateway.asgi import Message, Scope, Send
from spendgate.tracing.spans import CallOutcome

__all__ = ["CallTracer", "SpanSink"]

log = logging.getLogger("spendgate.tracing")

# The W3C trace context headers a caller may send to have the span join its trace.
_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})


class SpanSink(Protocol):
    def emit(
        self, outcome: CallOutcome, start_ns: int, end_ns: int, carrier: Mapping[str, str]
    ) -> None:
        """Record one call's span (``carrier``: the caller's trace context headers)."""


class _TracedCall:
    """What one call's span needs, gathered while it runs."""

    __slots__ = ("decision", "error_body", "max_tokens", "status")

    def __init__(self) -> None:
        self.decision: RoutingDecision | None = None
        self.max_tokens: int | None = None
        self.status: int | None = None
        self.error_body: bytes | None = None

    def take(self, decision: RoutingDecision) -> None:
        """The call ends with the last decision ended for it, unless that one is a fallback
        settled after the decision carrying the failover's attempts (all candidates failed):
        the attempts say more."""
        if self.decision is None or decision.attempts or not self.decision.attempts:
            self.decision = decision


_CURRENT: ContextVar[_TracedCall | None] = ContextVar("spendgate_traced_call", default=None)


class CallTracer:
    """The gateway's wrapper of every proxied call, and the governor's ``CallRecorder``."""

    def __init__(self, sink: SpanSink) -> None:
        self.sink = sink

    def planned(self, request: ChatRequest) -> None:
        call = _CURRENT.get()
        if call is not None:
            call.max_tokens = request.max_tokens

    def ended(self, decision: RoutingDecision) -> None:
        call = _CURRENT.get()
        if call is not None:
            call.take(decision)

    async def trace(
        self, scope: Scope, send: Send, handle: Callable[[Send], Awaitable[None]]
    ) -> None:
        """Run ``handle`` (the route's handler, given the ``send`` to use) and record its
        span once the response is complete (a stream: after it was settled and ended). A
        request refused before any decision (a bad key, a malformed body) made no call and
        has no span."""
        start_ns = time.time_ns()
        call = _TracedCall()
        token = _CURRENT.set(call)

        async def observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                call.status = message["status"]
            elif call.error_body is None and call.status is not None and call.status >= 400:
                call.error_body = bytes(message.get("body", b""))
            await send(message)

        try:
            await handle(observed)
        finally:
            _CURRENT.reset(token)
            if call.decision is not None:
                self._emit(scope, call, call.decision, start_ns)

    def _emit(
        self, scope: Scope, call: _TracedCall, decision: RoutingDecision, start_ns: int
    ) -> None:
        outcome = CallOutcome(
            scope["path"], decision, call.max_tokens, call.status, call.error_body
        )
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _TRACE_HEADERS
        }
        try:
            self.sink.emit(outcome, start_ns, time.time_ns(), carrier)
        except Exception:  # a span is never worth a request: the answer was already sent
            log.exception("tracing: no span for decision %s", decision.id)
