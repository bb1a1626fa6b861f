"""Profile the gateway at one fixed rate: the quick loop for optimisation work.

Starts nginx and the gateway exactly as ``gateway_bench.py`` does (same config, same cores),
serves ``--rate`` req/s for ``--seconds`` with py-spy sampling, and prints the CPU per request
and where it goes. ``gateway_bench.py`` remains the source of the reported figures.

    .venv/bin/python bench/profile_gateway.py --rate 400 --seconds 10
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import gateway_bench as bench


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=400.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="sampling duration")
    parser.add_argument("--top", type=int, default=25, help="rows per table")
    parser.add_argument(
        "--journal-writer",
        choices=("process", "thread"),
        default="process",
        help="where the journal's writer runs (config journal.writer)",
    )
    args = parser.parse_args()
    os.sched_setaffinity(0, {bench.LOAD_CORE})
    nice = -10 if os.geteuid() == 0 else 0
    settings = bench.Settings(
        quick=True,
        unloaded_s=0,
        open_s=0,
        open_warmup_s=0,
        stream_s=0,
        step_s=0,
        profile_s=args.seconds,
        startup_trials=0,
        quiet_wait_s=0,
        max_p99_ms=10.0,
        nice=nice,
        litellm=None,
        profile=True,
    )
    with tempfile.TemporaryDirectory(prefix="spendgate-profile-") as temp:
        workdir = Path(temp)
        nginx = bench.start_nginx(workdir, nice)
        os.environ["SPENDGATE_BENCH_JOURNAL_WRITER"] = args.journal_writer
        config = bench.render_gateway_config(workdir, nginx.port, "spendgate")
        gateway, _ = bench.start_gateway(workdir, config, nice, "spendgate")
        try:
            load = bench.Load(workdir, nice)
            endpoint = bench.endpoints(nginx, gateway.port)["spendgate"]
            # Warm up: first requests fill caches (windows, counters, connections).
            load.openloop(endpoint, rate=args.rate, duration_s=2.0, warmup_s=0.0)
            profile = bench.profile_gateway(load, endpoint, gateway, settings, workdir, args.rate)
        finally:
            gateway.stop()
            nginx.stop()
    if "error" in profile:
        raise SystemExit(profile["error"])
    print(
        f"{profile['requests']} requests; gateway CPU {profile['gateway_cpu_us_per_request']} µs"
        f"/request (its own process {profile['process_cpu_us_per_request']} µs, event loop "
        f"{profile['main_thread_cpu_us_per_request']} µs)"
    )
    for title, key in (
        ("inclusive, spendgate functions", "inclusive_spendgate"),
        ("self time by package", "self_by_package"),
        ("self time by function", "self_by_function"),
        ("by thread", "by_thread"),
    ):
        print(f"\n{title} (µs per request):")
        for item in profile.get(key, [])[: args.top]:
            print(f"  {item['us_per_request']:>7}  {item['name']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
