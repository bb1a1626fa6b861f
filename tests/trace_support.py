"""A local OpenTelemetry collector stub for the trace tests: a real HTTP server on loopback
that accepts OTLP/HTTP protobuf at ``/v1/traces`` (decoded with opentelemetry-proto's
``ExportTraceServiceRequest``, as a collector would) and keeps every span it receives."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from webhook_support import serving

__all__ = ["Collector", "ReceivedSpan", "collector"]

SPAN_KIND_CLIENT = 3
STATUS_ERROR = 2


@dataclass
class ReceivedSpan:
    name: str
    kind: int
    trace_id: str  # hex
    span_id: str
    parent_span_id: str  # "" for a root span
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status_code: int
    status_message: str
    resource: dict[str, Any] = field(default_factory=dict)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        found[pair.key] = _value(pair.value)
    return found


class Collector:
    """The stub's received spans, posts and headers (read from the test's thread)."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self.headers: list[dict[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"

    def receive(self, body: bytes, headers: dict[str, str]) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        ReceivedSpan(
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes=_attributes(span.attributes),
                            events=[(e.name, _attributes(e.attributes)) for e in span.events],
                            status_code=span.status.code,
                            status_message=span.status.message,
                            resource=resource,
                        )
                    )
        with self._lock:
            self._spans.extend(spans)
            self.headers.append(headers)

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[ReceivedSpan]:
        """The spans, once at least ``count`` arrived."""
        deadline = time.monotonic() + timeout_s
        while len(spans := self.spans()) < count:
            assert time.monotonic() < deadline, f"{len(spans)} spans, expected {count}"
            time.sleep(0.02)
        return spans

    def span_of(self, decision_id: str, timeout_s: float = 10.0) -> ReceivedSpan:
        """The span of the call that ended with ``decision_id``, once it arrived."""
        deadline = time.monotonic() + timeout_s
        while True:
            for span in self.spans():
                if span.attributes.get("spendgate.decision_id") == decision_id:
                    return span
            assert time.monotonic() < deadline, f"no span for decision {decision_id}"
            time.sleep(0.02)


@contextmanager
def collector(port: int = 0) -> Iterator[Collector]:
    """A collector stub listening on loopback (``port``: 0 for any free one)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    stub = Collector(server)
    server.collector = stub  # type: ignore[attr-defined]
    with serving(server):
        yield stub


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path != "/v1/traces" or self.headers.get("content-type") != (
            "application/x-protobuf"
        ):
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        stub: Collector = self.server.collector  # type: ignore[attr-defined]
        stub.receive(body, {name.lower(): value for name, value in self.headers.items()})
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass
