"""A local OTLP/HTTP trace collector for the traces bench: accepts protobuf exports at
``/v1/traces``, decodes them (as a collector would) and counts the spans; ``GET /count``
answers the count. Run: ``python bench/otlp_sink.py PORT`` (the bench pins it to the load
core)."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_ANSWER = ExportTraceServiceResponse().SerializeToString()
_lock = threading.Lock()
_spans = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        global _spans
        request = ExportTraceServiceRequest()
        request.ParseFromString(self.rfile.read(int(self.headers.get("content-length", "0"))))
        count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        with _lock:
            _spans += count
        self._answer(_ANSWER, "application/x-protobuf")

    def do_GET(self) -> None:
        self._answer(str(_spans).encode(), "text/plain")

    def _answer(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), _Handler).serve_forever()
