"""What one traced call costs the gateway's process: building its span (spendgate's
attributes and the OpenTelemetry SDK's span, on the event loop) and encoding it for export
(OTLP protobuf, on the SDK's export thread, which shares the core and the GIL).

Run: ``taskset -c 0 .venv/bin/python bench/span_cost.py [--spans 20000]``. No network: the
exporter encodes each batch as the OTLP/HTTP exporter does and discards it. Spans are queued
while the calls are timed (the export thread idle) and encoded afterwards, so the two costs
are measured apart.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from spendgate.config import parse_config
from spendgate.domain.pricing import Usage
from spendgate.governor import Governor
from spendgate.tracing.otlp import OtlpSpans
from spendgate.tracing.spans import CallOutcome, call_attributes, provider_endpoint

CONFIG = """
providers: [{id: alpha, kind: openai, base_url: "http://127.0.0.1:9/v1"}]
models: [{id: gpt-4o-mini, provider: alpha}]
routing: {default_model: gpt-4o-mini, mode: enforced}
tracing: {otlp_endpoint: "http://127.0.0.1:9/v1/traces", max_queue: 1000000, batch_size: 1000000,
          export_every_s: 60}
"""
TRACEPARENT = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}


class _Encoding(SpanExporter):
    """Encodes every batch as the OTLP/HTTP exporter does, timing it, and drops it."""

    def __init__(self) -> None:
        self.spans = 0
        self.seconds = 0.0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        started = time.perf_counter()
        encode_spans(spans).SerializePartialToString()
        self.seconds += time.perf_counter() - started
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def _per_call_us(function: object, count: int) -> float:
    assert callable(function)
    started = time.perf_counter()
    for _ in range(count):
        function()
    return (time.perf_counter() - started) / count * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    config = parse_config(CONFIG, "bench.yaml")
    assert config.tracing is not None
    governor = Governor.from_config(config)
    decision = governor.plan(
        {"model": "gpt-4o-mini", "max_tokens": 256, "messages": [{"role": "user", "content": "hi"}]}
    )
    decision = replace(
        decision, usage=Usage(120, 256), actual_cost_usd=decision.estimate.upper_usd, status="ok"
    )
    outcome = CallOutcome("/v1/chat/completions", decision, 256, 200, None)
    providers = {"alpha": provider_endpoint("openai", "http://127.0.0.1:9/v1/chat/completions")}
    encoding = _Encoding()
    spans = OtlpSpans(config.tracing, {}, providers, "bench", encoding)
    asyncio.run(spans.start())

    def emit(carrier: dict[str, str]) -> None:
        now = time.time_ns()
        spans.emit(outcome, now - 1_000_000, now, carrier)

    figures: dict[str, list[float]] = {"attributes": [], "span": [], "span+traceparent": []}
    for _ in range(args.rounds):
        figures["attributes"].append(
            _per_call_us(lambda: call_attributes(outcome, providers), args.spans)
        )
        figures["span"].append(_per_call_us(lambda: emit({}), args.spans))
        figures["span+traceparent"].append(_per_call_us(lambda: emit(TRACEPARENT), args.spans))
    asyncio.run(spans.stop())
    attributes = len(call_attributes(outcome, providers))
    print(f"µs per traced call (median of {args.rounds} rounds of {args.spans}):")
    print(f"  {attributes} attributes built (spendgate)      {_median(figures['attributes'])}")
    print(f"  span started, filled, ended (+ the above)  {_median(figures['span'])}")
    print(f"  the same with a caller's traceparent       {_median(figures['span+traceparent'])}")
    encoded = encoding.seconds / encoding.spans * 1e6
    print(f"  OTLP protobuf encoding (export thread)     {encoded:.1f} ({encoding.spans} spans)")
    return 0


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}"


if __name__ == "__main__":
    raise SystemExit(main())
