"""Spans handed to the OpenTelemetry SDK: its batch processor (a bounded queue and a thread
that exports in batches) and its OTLP/HTTP exporter. Imported only when tracing is on.

The request path only starts and ends a span with explicit timestamps (no context manager,
no global tracer provider: an application embedding spendgate keeps its own). The exporter is
watched: a collector that stops answering is logged once, and again once it answers; the
exporter's own per-batch messages are silenced in favour of those two lines.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from spendgate import __version__
from spendgate.config.tracing import TracingSpec
from spendgate.tracing.spans import (
    CallOutcome,
    ProviderEndpoint,
    attempt_event,
    call_attributes,
    operation_name,
)

__all__ = ["OtlpSpans"]

log = logging.getLogger("spendgate.tracing")

# The exporter logs every failed batch and every retry: replaced by ``_WatchedExporter``'s.
_EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


class _WatchedExporter(SpanExporter):
    """The OTLP exporter, counting what it sent and lost and logging when the collector
    stops and starts answering (never per span)."""

    def __init__(self, inner: SpanExporter, where: str) -> None:
        self._inner = inner
        self._where = where
        self._failing = False
        self.exported = 0
        self.failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
            if self._failing:
                self._failing = False
                log.warning("tracing: the collector at %s takes spans again", self._where)
        else:
            self.failed += len(spans)
            if not self._failing:
                self._failing = True
                log.warning(
                    "tracing: spans cannot be exported to %s; they are dropped until it "
                    "answers (requests are not affected)",
                    self._where,
                )
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class OtlpSpans:
    """The gateway's span sink, a service: the SDK's thread runs from ``start`` to ``stop``
    (spans of calls outside that are not recorded)."""

    def __init__(
        self,
        spec: TracingSpec,
        environ: Mapping[str, str],
        providers: Mapping[str, ProviderEndpoint],
        where: str,
        exporter: SpanExporter | None = None,
    ) -> None:
        self._spec = spec
        # Where spans go instead of the OTLP/HTTP exporter (bench/span_cost.py's encoder).
        self._replacement = exporter
        self._headers = spec.export_headers(environ)
        self._providers = providers
        self._where = where  # the endpoint as it may be logged
        self._propagator = TraceContextTextMapPropagator()
        self._provider: TracerProvider | None = None
        self._exporter: _WatchedExporter | None = None
        self._tracer: Tracer | None = None

    def counts(self) -> tuple[int, int]:
        """Spans exported, and lost because the collector did not take them."""
        exporter = self._exporter
        return (exporter.exported, exporter.failed) if exporter is not None else (0, 0)

    async def start(self) -> None:
        spec = self._spec
        logging.getLogger(_EXPORTER_LOGGER).setLevel(logging.CRITICAL)
        exporter = self._replacement or OTLPSpanExporter(
            endpoint=spec.otlp_endpoint, headers=self._headers, timeout=spec.timeout_s
        )
        self._exporter = _WatchedExporter(exporter, self._where)
        provider = TracerProvider(
            resource=Resource.create(
                {"service.name": spec.service_name, "service.version": __version__}
            ),
            # A caller's sampled (or not) trace decides for its calls; others by the ratio.
            sampler=ParentBased(TraceIdRatioBased(spec.sample_ratio)),
            shutdown_on_exit=False,
        )
        provider.add_span_processor(
            BatchSpanProcessor(
                self._exporter,
                max_queue_size=spec.max_queue,
                schedule_delay_millis=spec.export_every_s * 1000,
                max_export_batch_size=spec.batch_size,
            )
        )
        self._provider = provider
        self._tracer = provider.get_tracer("spendgate", __version__)

    async def stop(self) -> None:
        """Export what is queued (within the export timeout) and stop the SDK's thread."""
        provider, self._provider, self._tracer = self._provider, None, None
        if provider is not None:
            await asyncio.to_thread(provider.shutdown)

    def emit(
        self, outcome: CallOutcome, start_ns: int, end_ns: int, carrier: Mapping[str, str]
    ) -> None:
        tracer = self._tracer
        if tracer is None:
            return
        decision = outcome.decision
        parent: Context | None = self._propagator.extract(carrier) if carrier else None
        span = tracer.start_span(
            f"{operation_name(outcome.route)} {decision.requested_model}",
            context=parent,
            kind=SpanKind.CLIENT,
            start_time=start_ns,
        )
        if not span.is_recording():  # not sampled: nothing more to build
            return
        attributes = call_attributes(outcome, self._providers)
        span.set_attributes(attributes)
        for attempt in decision.attempts:
            span.add_event("spendgate.upstream_attempt", attempt_event(attempt), end_ns)
        error = attributes.get("error.type")
        if error is not None:
            span.set_status(StatusCode.ERROR, str(error))
        span.end(end_ns)
