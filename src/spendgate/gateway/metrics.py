"""Prometheus metrics of the gateway (served at ``/metrics``).

Labels are bounded (route, status class, model, provider, action): never a key, principal or
session id, whose cardinality is unbounded. Labelled children are cached so that recording a
request costs a few dict lookups and lock-free increments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from spendgate.domain.pricing import Usage
from spendgate.store.writer import WriterStats

__all__ = ["CONTENT_TYPE_LATEST", "GatewayMetrics"]

# Upstream latency spans ~1 ms (local mocks) to minutes (long generations).
_UPSTREAM_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# The gateway's own overhead is sub-millisecond by design: resolve it finely.
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.002, 0.005, 0.01, 0.05)


_Metric = TypeVar("_Metric", Counter, Histogram)


class _Children(Generic[_Metric]):
    """A labelled metric whose children are looked up in a dict: prometheus-client's own
    ``labels()`` validates the values and takes a lock on every call (~3 µs, several times a
    request). Bounded like the metric itself: one entry per child it holds."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: _Metric) -> None:
        self._metric: _Metric = metric
        self._children: dict[tuple[str, ...], _Metric] = {}

    def labels(self, *values: str) -> _Metric:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = _Children(
            Counter(
                "spendgate_requests",
                "Proxy requests by route and HTTP status.",
                ["route", "status"],
                registry=self.registry,
            )
        )
        self.tokens = _Children(
            Counter(
                "spendgate_tokens",
                "Tokens used, by model and direction (input, output, cached_input).",
                ["model", "direction"],
                registry=self.registry,
            )
        )
        self.cost = _Children(
            Counter(
                "spendgate_cost_usd",
                "Actual cost in USD by model (unpriced usage is counted in spendgate_unpriced).",
                ["model"],
                registry=self.registry,
            )
        )
        self.unpriced = _Children(
            Counter(
                "spendgate_unpriced_requests",
                "Requests whose cost could not be priced.",
                ["model"],
                registry=self.registry,
            )
        )
        # Limit ids are configured by the operator: bounded, unlike the members they limit.
        self.rate_limited = _Children(
            Counter(
                "spendgate_rate_limited",
                "Requests refused (429) by a rate limit, by its id.",
                ["limit_id"],
                registry=self.registry,
            )
        )
        self.decisions = _Children(
            Counter(
                "spendgate_routing_decisions",
                "Routing decisions by applied action (proceed, degrade, escalate, failover, "
                "block, approval_required).",
                ["action"],
                registry=self.registry,
            )
        )
        self.upstream_latency = _Children(
            Histogram(
                "spendgate_upstream_latency_seconds",
                "Latency of upstream calls (to the last byte).",
                ["provider"],
                buckets=_UPSTREAM_BUCKETS,
                registry=self.registry,
            )
        )
        self.added_latency = Histogram(
            "spendgate_added_latency_seconds",
            "Time spent in the gateway itself (total minus upstream).",
            buckets=_OVERHEAD_BUCKETS,
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "spendgate_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered; retry: failed, to be tried "
            "again; failed: given up).",
            ["outcome"],
            registry=self.registry,
        )

    def watch_alerts(
        self, open_alerts: Callable[[], dict[tuple[str, str], int]], dropped: Callable[[], int]
    ) -> None:
        """Export the unresolved alerts by kind and severity, read when scraped."""
        self.registry.register(_AlertsCollector(open_alerts, dropped))

    def watch_journal(self, stats: Callable[[], WriterStats]) -> None:
        """Export the journal writer's backlog, read when scraped (nothing per request)."""
        self.registry.register(_JournalCollector(stats))

    def watch_traces(self, counts: Callable[[], tuple[int, int]]) -> None:
        """Export the trace exporter's spans sent and lost (``counts``), read when scraped."""
        self.registry.register(_TracesCollector(counts))

    def record_usage(self, model: str, usage: Usage, cost_usd: Decimal | None) -> None:
        self.tokens.labels(model, "input").inc(usage.input_tokens)
        self.tokens.labels(model, "output").inc(usage.output_tokens)
        if usage.cached_input_tokens:
            self.tokens.labels(model, "cached_input").inc(usage.cached_input_tokens)
        if cost_usd is None:
            self.unpriced.labels(model).inc()
        else:
            self.cost.labels(model).inc(float(cost_usd))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _JournalCollector(Collector):
    def __init__(self, stats: Callable[[], WriterStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        yield GaugeMetricFamily(
            "spendgate_journal_pending",
            "Journal records waiting for the database (queued or being committed).",
            value=stats.pending,
        )
        yield GaugeMetricFamily(
            "spendgate_journal_max_pending",
            "Queued journal records beyond which decision records are dropped.",
            value=stats.max_pending,
        )
        yield CounterMetricFamily(
            "spendgate_journal_dropped",
            "Decision records dropped because the journal's queue was full (counter "
            "increments are never dropped).",
            value=stats.dropped_items,
        )
        yield CounterMetricFamily(
            "spendgate_journal_failed_attempts",
            "Journal transactions that failed and were retried.",
            value=stats.failed_attempts,
        )
        yield CounterMetricFamily(
            "spendgate_journal_lost",
            "Journal records lost: with a writer process that died, or abandoned at close.",
            value=stats.lost_items,
        )
        yield CounterMetricFamily(
            "spendgate_journal_writer_restarts",
            "Journal writer processes that died and were replaced.",
            value=stats.writer_restarts,
        )


class _AlertsCollector(Collector):
    def __init__(
        self, open_alerts: Callable[[], dict[tuple[str, str], int]], dropped: Callable[[], int]
    ) -> None:
        self._open_alerts = open_alerts
        self._dropped = dropped

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "spendgate_alerts_open",
            "Unresolved (open or acknowledged) alerts by kind and severity.",
            labels=["kind", "severity"],
        )
        for (kind, severity), count in sorted(self._open_alerts().items()):
            family.add_metric([kind, severity], count)
        yield family
        yield CounterMetricFamily(
            "spendgate_alert_events_dropped",
            "Request outcomes the alert detector dropped because it fell behind.",
            value=self._dropped(),
        )


class _TracesCollector(Collector):
    def __init__(self, counts: Callable[[], tuple[int, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        exported, failed = self._counts()
        yield CounterMetricFamily(
            "spendgate_trace_spans_exported",
            "Spans the OTLP collector accepted.",
            value=exported,
        )
        yield CounterMetricFamily(
            "spendgate_trace_spans_failed",
            "Spans dropped because the OTLP collector did not take them (down, refusing, or "
            "slower than the export timeout).",
            value=failed,
        )
