"""Tracing off (no ``tracing`` section) costs nothing: a served gateway that proxied calls,
one of them carrying a ``traceparent``, never imported spendgate's tracing package nor the
OpenTelemetry SDK, exporter or protobuf code; the header changes nothing. Checked in a fresh
interpreter (the test process itself imports them for the other trace tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent

SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from gateway_support import HELLO, ONE_PROVIDER, ONE_PROVIDER_ENV, http, serve_config
from spendgate.mock_upstream.runner import MockUpstreamThread

with MockUpstreamThread(latency_ms=0) as mock:
    with serve_config(ONE_PROVIDER.format(mock=mock.base_url), ONE_PROVIDER_ENV) as served:
        statuses = []
        sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        for headers in ({{}}, {{"traceparent": sampled}}):
            reply = http("POST", served.url + "/v1/chat/completions",
                         json={{"model": "gpt-4o-mini", "messages": HELLO, "stream": True}},
                         authorization="Bearer sg-alice", **headers)
            statuses.append([reply.status_code, "[DONE]" in reply.text])
        tracer = served.gateway.tracer
        recorder = served.gateway.governor.recorder
loaded = sorted(m for m in sys.modules if m.startswith(
    ("spendgate.tracing", "opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.proto")))
print(json.dumps({{"statuses": statuses, "loaded": loaded,
                  "hooks": [tracer is None, recorder is None]}}))
"""


def test_tracing_off_imports_nothing_and_ignores_traceparent() -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(tests=str(TESTS))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["statuses"] == [[200, True], [200, True]]
    assert found["loaded"] == []
    assert found["hooks"] == [True, True]
