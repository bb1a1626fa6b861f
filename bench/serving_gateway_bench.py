"""Serving-layer A/B on the real gateway: the bench config (20 applicable policies, SQLite
journal, nginx upstream) served by uvicorn + httptools (``spendgate serve``) and by Granian's
ASGI interface (one worker, one runtime thread), in interleaved rounds at a fixed open-loop
rate; ``--servers asgi-minimal`` adds the gateway on ``bench/serving/raw_asgi.py`` (a minimal
ASGI server on httptools that does not stream). Reports the gateway's CPU per request (its
whole process tree, from /proc) and the latency. Cores as in gateway_bench.py.

    .venv/bin/pip install granian   # not a dependency of spendgate: measured, not adopted
    .venv/bin/python bench/serving_gateway_bench.py --rate 400 --seconds 8 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import gateway_bench as bench
from serving_bench import tree_cpu_s


def start(kind: str, workdir: Path, config: Path) -> bench.Server:
    port = bench.free_port()
    if kind == "uvicorn":
        argv = [str(bench.VENV_BIN / "spendgate"), "serve", "--config", str(config)]
        argv += ["--port", str(port)]
    elif kind == "asgi-minimal":
        argv = [sys.executable, str(bench.BENCH / "serving" / "raw_asgi.py"), str(port)]
        argv.append("spendgate.gateway.worker:create_worker_gateway")
    else:
        argv = [str(bench.VENV_BIN / "granian"), "--interface", "asgi", "--factory"]
        argv += ["--port", str(port), "--workers", "1", "--runtime-threads", "1"]
        argv += ["--runtime-mode", "st", "--loop", "uvloop", "--http", "1", "--no-ws"]
        argv += ["--log-level", "warning", "spendgate.gateway.worker:create_worker_gateway"]
    env = {**bench.GATEWAY_ENV, "SPENDGATE_WORKER_CONFIG": str(config)}
    process, log = bench.spawn(kind, bench.pinned(bench.GATEWAY_CORE, argv, 0), workdir, env)
    bench.wait_ready(process, port, "/healthz", time.perf_counter())
    return bench.Server(kind, process, port, log)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=400.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--servers", nargs="*", default=["uvicorn", "granian-asgi"])
    args = parser.parse_args()
    os.sched_setaffinity(0, {bench.LOAD_CORE})
    rows: dict[str, list[dict[str, float]]] = {kind: [] for kind in args.servers}
    with tempfile.TemporaryDirectory(prefix="spendgate-serving-") as temp:
        workdir = Path(temp)
        nginx = bench.start_nginx(workdir, 0)
        load = bench.Load(workdir, 0)
        try:
            for round_ in range(args.rounds):
                for kind in rows:
                    config = bench.render_gateway_config(workdir, nginx.port, f"{kind}{round_}")
                    server = start(kind, workdir, config)
                    try:
                        endpoint = bench.endpoints(nginx, server.port)["spendgate"]
                        load.openloop(endpoint, rate=args.rate, duration_s=2.0, warmup_s=0.0)
                        before = tree_cpu_s(server.pid)
                        result = load.openloop(
                            endpoint, rate=args.rate, duration_s=args.seconds, warmup_s=0.0
                        )
                        used = tree_cpu_s(server.pid) - before
                    finally:
                        server.stop()
                    rows[kind].append(
                        {
                            "cpu_us_per_req": used / result["ok"] * 1e6,
                            "p50_ms": result["latency"]["p50_ms"],
                            "p99_ms": result["latency"]["p99_ms"],
                            "ok": result["ok"],
                            "errors": result["errors"],
                        }
                    )
        finally:
            nginx.stop()
    summary = {
        kind: {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}
        for kind, runs in rows.items()
    }
    print(json.dumps({"rate": args.rate, "rounds": rows, "median": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
