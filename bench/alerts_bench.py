"""Does the alert detector cost the proxy anything? Alerts on vs off, side by side in one run.

Run: ``.venv/bin/python bench/alerts_bench.py [--duration 20] [--rate 500]`` (Linux; nginx,
wrk and taskset as for bench/gateway_bench.py, whose helpers it uses).

Two gateways serve the bench config (20 applicable budget policies, SQLite journal) plus one
budget that keeps alerts firing (a global daily request limit of 10 with ``hard_action:
alert``: every request past the tenth is an occurrence of its threshold and exhaustion
alerts, whose first announcements go to a webhook on nginx). One has ``alerts.enabled: true``
with ``evaluate_every_seconds: 1`` (15 times the default rate of full passes), the other
``false``. Each is measured against nginx directly, in alternating rounds so drift hits
both alike: unloaded latency (``wrk -c1``) and an open-loop fixed rate. It prints the added
latency of each and the difference on − off.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway_bench as gb  # the sibling module, found through the path above

ALERTING_BUDGET = """
  - {id: bench-alerting, scope: {kind: global}, metric: requests, interval: daily,
     hard_limit: 10, hard_action: alert, alert_thresholds: [0.5, 0.8]}
"""


def render(workdir: Path, upstream_port: int, name: str, enabled: bool) -> Path:
    config = gb.render_gateway_config(workdir, upstream_port, name)
    alerts = (
        "alerts:\n  enabled: true\n  evaluate_every_seconds: 1\n"
        f'  webhooks: [{{id: bench, url: "http://127.0.0.1:{upstream_port}/hook"}}]\n'
        if enabled
        else "alerts: {enabled: false}\n"
    )
    config.write_text(config.read_text().rstrip("\n") + ALERTING_BUDGET + alerts)
    return config


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(run["latency"][key] for run in runs), 3)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop req/s")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="spendgate-alerts-bench-") as tmp:
        workdir = Path(tmp)
        nginx = gb.start_nginx(workdir, 0)
        gateways = {}
        try:
            for name, enabled in (("alerts-on", True), ("alerts-off", False)):
                config = render(workdir, nginx.port, name, enabled)
                gateways[name], _ = gb.start_gateway(workdir, config, 0, name)
            load = gb.Load(workdir, 0)
            targets = {
                "direct": gb.endpoints(nginx, gateways["alerts-on"].port, None)["direct"],
                **{
                    name: gb.endpoints(nginx, server.port, None)["spendgate"]
                    for name, server in gateways.items()
                },
            }
            for target in targets.values():  # warm up, and pass the alerting budget's limit
                load.wrk(target, 3)
            unloaded: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
            fixed: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
            for round_ in range(args.rounds):
                order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
                for name in order:
                    unloaded[name].append(load.wrk(targets[name], args.duration))
                    fixed[name].append(
                        load.openloop(
                            targets[name], rate=args.rate, duration_s=args.duration, warmup_s=2
                        )
                    )
                    print(f"round {round_ + 1}: {name} measured", file=sys.stderr)
            time.sleep(2)
            results = summarize(unloaded, fixed, gateways, args.rate)
        finally:
            for server in (*gateways.values(), nginx):
                server.stop()
    out = gb.RESULTS / "alerts.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwritten to {out}")
    return 0


def summarize(
    unloaded: dict[str, list[dict[str, Any]]],
    fixed: dict[str, list[dict[str, Any]]],
    gateways: dict[str, gb.Server],
    rate: float,
) -> dict[str, Any]:
    result: dict[str, Any] = {"rate": rate, "phases": {}}
    for phase, runs in (("unloaded", unloaded), (f"open {rate:g} req/s", fixed)):
        direct = {key: median_of(runs["direct"], key) for key in ("p50_ms", "p99_ms")}
        row: dict[str, Any] = {"direct": direct}
        for name in gateways:
            measured = {key: median_of(runs[name], key) for key in ("p50_ms", "p99_ms")}
            row[name] = {
                **measured,
                "added_p50_ms": round(measured["p50_ms"] - direct["p50_ms"], 3),
                "added_p99_ms": round(measured["p99_ms"] - direct["p99_ms"], 3),
                # Each round's own (added = that round's gateway − that round's direct).
                "rounds_added_p50_ms": [
                    round(g["latency"]["p50_ms"] - d["latency"]["p50_ms"], 3)
                    for g, d in zip(runs[name], runs["direct"], strict=True)
                ],
                "rounds_added_p99_ms": [
                    round(g["latency"]["p99_ms"] - d["latency"]["p99_ms"], 3)
                    for g, d in zip(runs[name], runs["direct"], strict=True)
                ],
            }
        row["on_minus_off"] = {
            key: round(row["alerts-on"][key] - row["alerts-off"][key], 3)
            for key in ("added_p50_ms", "added_p99_ms")
        }
        result["phases"][phase] = row
    return result


def print_table(results: dict[str, Any]) -> None:
    print(f"{'':24}{'added p50 ms':>14}{'added p99 ms':>14}")
    for phase, row in results["phases"].items():
        print(phase)
        for name in ("alerts-on", "alerts-off"):
            figures = row[name]
            print(f"  {name:22}{figures['added_p50_ms']:>14.3f}{figures['added_p99_ms']:>14.3f}")
        diff = row["on_minus_off"]
        print(f"  {'on − off':22}{diff['added_p50_ms']:>14.3f}{diff['added_p99_ms']:>14.3f}")
        for name in ("alerts-on", "alerts-off"):
            rounds = row[name]
            p50s = " ".join(f"{value:.2f}" for value in rounds["rounds_added_p50_ms"])
            p99s = " ".join(f"{value:.1f}" for value in rounds["rounds_added_p99_ms"])
            print(f"    {name} per round: p50 {p50s} · p99 {p99s}")


if __name__ == "__main__":
    raise SystemExit(main())
