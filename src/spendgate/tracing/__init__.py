"""OpenTelemetry traces: one span per proxied call, exported over OTLP/HTTP (the ``tracing``
config section). Off by default; then nothing of this package (nor of OpenTelemetry) is
imported, and a request costs one attribute check (``Gateway.tracer is None``).

``calls`` follows a request (its start, ``traceparent``, HTTP status and the decisions the
governor ended for it), ``spans`` turns what it saw into a span's name and attributes (the
GenAI semantic conventions and spendgate's own), ``otlp`` hands spans to the OpenTelemetry
SDK's batch processor and OTLP/HTTP exporter.
"""
