"""Unloaded latency of the gateway with its journal writer on a thread vs in a process.

Run: ``.venv/bin/python bench/journal_ab_bench.py [--rounds 3] [--seconds 5]``.

Starts nginx and the gateway exactly as ``gateway_bench.py`` does (same config: 20 applicable
budget policies, SQLite journal; same cores), then in interleaved rounds serves ``wrk -t1 -c1``
for ``--seconds`` directly to nginx and through a gateway configured with
``journal.writer: thread`` and one with ``journal.writer: process`` (a fresh gateway per
round). Reports, per mode, the median over rounds of the added p50/p99 (gateway − direct of
the same round), the CPU per request of the gateway's own process and of its process tree
(the writer process included), and how much CPU other work on the machine used meanwhile.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import gateway_bench as bench


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {bench.LOAD_CORE})
    nice = -10 if os.geteuid() == 0 else 0
    modes = ("thread", "process")
    rows: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory(prefix="spendgate-journal-ab-") as temp:
        workdir = Path(temp)
        nginx = bench.start_nginx(workdir, nice)
        load = bench.Load(workdir, nice)
        try:
            for round_ in range(args.rounds):
                for mode in modes:
                    os.environ["SPENDGATE_BENCH_JOURNAL_WRITER"] = mode
                    name = f"spendgate-{mode}-{round_}"
                    config = bench.render_gateway_config(workdir, nginx.port, name)
                    gateway, _ = bench.start_gateway(workdir, config, nice, name)
                    try:
                        ends = bench.endpoints(nginx, gateway.port)
                        load.wrk(ends["spendgate"], 2.0)  # warm up (and start the writer)
                        quiet = bench.wait_quiet(5.0)
                        direct = load.wrk(ends["direct"], args.seconds)
                        own0, tree0 = bench.own_cpu_seconds(gateway.pid), gateway.cpu()
                        with bench.CpuWindow({"gateway": gateway}) as window:
                            served = load.wrk(ends["spendgate"], args.seconds)
                        own = bench.own_cpu_seconds(gateway.pid) - own0
                        tree = gateway.cpu() - tree0
                    finally:
                        gateway.stop()
                    requests = served["requests"]
                    latency, baseline = served["latency"], direct["latency"]
                    rows[mode].append(
                        {
                            "added_p50_ms": latency["p50_ms"] - baseline["p50_ms"],
                            "added_p99_ms": latency["p99_ms"] - baseline["p99_ms"],
                            "own_cpu_us": own / requests * 1e6,
                            "tree_cpu_us": tree / requests * 1e6,
                            "foreign_cores": window.result["foreign_cores"],
                            "quiet_before": quiet["foreign_cores"],
                        }
                    )
                    print(mode, round_, {k: round(v, 3) for k, v in rows[mode][-1].items()})
        finally:
            nginx.stop()
    print(f"\nmedians of {args.rounds} rounds, wrk -t1 -c1 for {args.seconds:g} s each")
    keys = list(rows[modes[0]][0])
    print(f"{'':<10}" + "".join(f"{key:>16}" for key in keys))
    for mode in modes:
        medians = [statistics.median(row[key] for row in rows[mode]) for key in keys]
        print(f"{mode:<10}" + "".join(f"{value:>16.3f}" for value in medians))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
