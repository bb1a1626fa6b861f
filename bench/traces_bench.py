"""Does tracing cost the proxy anything? Direct vs the gateway with tracing off vs with
tracing on, in one run.

Run: ``.venv/bin/python bench/traces_bench.py [--duration 20] [--rounds 3] [--rate 300]``
(Linux; nginx, wrk and taskset as for bench/gateway_bench.py, whose helpers it uses).

Two gateways serve the bench config (20 applicable budget policies, SQLite journal) on core
0: one with a ``tracing`` section exporting every call (``sample_ratio: 1``) over OTLP/HTTP to
a local collector (bench/otlp_sink.py, which decodes and counts the spans) on core 1 with
nginx and the load generators, the other without. Each is measured against nginx directly in
alternating rounds (bench/onoff.py): unloaded latency (``wrk -c1``) and an open-loop fixed
rate. It prints the added latency of each, on − off and on / off, and checks that the
collector received a span for every call the traced gateway answered.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway_bench as gb  # the sibling modules, found through the path above
import onoff

ON, OFF = "tracing-on", "tracing-off"


def render(workdir: Path, upstream_port: int, name: str, collector_port: int | None) -> Path:
    config = gb.render_gateway_config(workdir, upstream_port, name)
    if collector_port is not None:
        tracing = (
            f"tracing: {{otlp_endpoint: 'http://127.0.0.1:{collector_port}/v1/traces', "
            "sample_ratio: 1}\n"
        )
        config.write_text(config.read_text().rstrip("\n") + "\n" + tracing)
    return config


def start_collector(workdir: Path) -> gb.Server:
    port = gb.free_port()
    argv = [sys.executable, str(gb.BENCH / "otlp_sink.py"), str(port)]
    process, log = gb.spawn("otlp-sink", gb.pinned(gb.LOAD_CORE, argv), workdir)
    gb.wait_ready(process, port, "/count", time.perf_counter(), limit=10)
    return gb.Server("otlp-sink", process, port, log)


def main(argv: Sequence[str] | None = None) -> int:
    args = onoff.arguments(__doc__ or "", 300.0, argv)
    with tempfile.TemporaryDirectory(prefix="spendgate-traces-bench-") as tmp:
        workdir = Path(tmp)
        nginx = gb.start_nginx(workdir, 0)
        sink = start_collector(workdir)
        try:
            configs = {
                ON: render(workdir, nginx.port, ON, sink.port),
                OFF: render(workdir, nginx.port, OFF, None),
            }
            with onoff.gateways(workdir, configs) as servers:
                results = onoff.compare(workdir, nginx, servers, ON, OFF, args)
                results["spans"] = _spans_check(servers[ON], sink)
                results["loadavg"] = gb.loadavg()
        finally:
            sink.stop()
            nginx.stop()
    out = gb.RESULTS / "traces.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    onoff.print_table(results, ON, OFF)
    spans = results["spans"]
    print(
        f"\nspans received {spans['received']} for {spans['answered']} calls answered "
        f"(exported {spans['exported']}, failed {spans['failed']})"
    )
    print(f"written to {out}")
    return 0


def _spans_check(traced: gb.Server, sink: gb.Server) -> dict[str, int]:
    """Every call the traced gateway answered has its span at the collector, once the last
    batch was sent (within a few export intervals)."""
    answered = int(sum(gb.metrics_requests(traced.port).values()))
    deadline = time.monotonic() + 15
    while True:
        received = int(gb.http_get(sink.port, "/count")[1])
        if received >= answered or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    _, metrics = gb.http_get(traced.port, "/metrics")
    counts = {
        line.split()[0]: int(float(line.split()[1]))
        for line in metrics.decode().splitlines()
        if line.startswith("spendgate_trace_spans_")
    }
    return {
        "answered": answered,
        "received": received,
        "exported": counts.get("spendgate_trace_spans_exported_total", 0),
        "failed": counts.get("spendgate_trace_spans_failed_total", 0),
    }


if __name__ == "__main__":
    raise SystemExit(main())
