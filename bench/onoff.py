"""A gateway feature on vs off, side by side in one run (bench/alerts_bench.py,
bench/traces_bench.py): two gateways on the bench config, one with the feature and one
without, each measured against nginx directly in alternating rounds so drift hits both
alike: unloaded latency (``wrk -c1``) and an open-loop fixed rate. Figures are medians of the
rounds; *added* is the gateway's figure less direct's, and the table shows on − off and the
ratio on / off of the added latency."""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gateway_bench as gb  # the sibling module (bench/ is on the importing script's path)

__all__ = ["arguments", "compare", "gateways", "measure", "print_table", "summarize"]

Runs = dict[str, list[dict[str, Any]]]


def arguments(doc: str, rate: float, argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--rate", type=float, default=rate, help="open-loop req/s")
    return parser.parse_args(argv)


@contextmanager
def gateways(workdir: Path, configs: dict[str, Path]) -> Iterator[dict[str, gb.Server]]:
    """A gateway per named config on the gateway core, stopped when the block ends."""
    servers: dict[str, gb.Server] = {}
    try:
        for name, config in configs.items():
            servers[name], _ = gb.start_gateway(workdir, config, 0, name)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def compare(
    workdir: Path,
    nginx: gb.Server,
    servers: dict[str, gb.Server],
    on: str,
    off: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Warm up, measure direct, ``on`` and ``off`` in alternating rounds, summarize."""
    load = gb.Load(workdir, 0)
    targets = {
        "direct": gb.endpoints(nginx, servers[on].port)["direct"],
        **{name: gb.endpoints(nginx, servers[name].port)["spendgate"] for name in (on, off)},
    }
    for target in targets.values():
        load.wrk(target, 3)
    unloaded, fixed = measure(load, targets, args.rounds, args.duration, args.rate)
    return summarize(unloaded, fixed, on, off, args.rate)


def measure(
    load: gb.Load, targets: dict[str, gb.Endpoint], rounds: int, duration_s: float, rate: float
) -> tuple[Runs, Runs]:
    """Unloaded and open-loop runs of every target, round after round (order reversed every
    other round)."""
    unloaded: Runs = {name: [] for name in targets}
    fixed: Runs = {name: [] for name in targets}
    for round_ in range(rounds):
        order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
        for name in order:
            unloaded[name].append(load.wrk(targets[name], duration_s))
            fixed[name].append(
                load.openloop(targets[name], rate=rate, duration_s=duration_s, warmup_s=2)
            )
            print(f"round {round_ + 1}: {name} measured", file=sys.stderr)
    return unloaded, fixed


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(run["latency"][key] for run in runs), 3)


def summarize(unloaded: Runs, fixed: Runs, on: str, off: str, rate: float) -> dict[str, Any]:
    result: dict[str, Any] = {"rate": rate, "phases": {}}
    for phase, runs in (("unloaded", unloaded), (f"open {rate:g} req/s", fixed)):
        direct = {key: _median(runs["direct"], key) for key in ("p50_ms", "p99_ms")}
        row: dict[str, Any] = {"direct": direct}
        for name in (on, off):
            measured = {key: _median(runs[name], key) for key in ("p50_ms", "p99_ms")}
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
            key: round(row[on][key] - row[off][key], 3) for key in ("added_p50_ms", "added_p99_ms")
        }
        row["on_over_off"] = {
            key: round(row[on][key] / row[off][key], 2) if row[off][key] > 0 else None
            for key in ("added_p50_ms", "added_p99_ms")
        }
        result["phases"][phase] = row
    return result


def print_table(results: dict[str, Any], on: str, off: str) -> None:
    print(f"{'':24}{'added p50 ms':>14}{'added p99 ms':>14}")
    for phase, row in results["phases"].items():
        print(f"{phase} (direct p50 {row['direct']['p50_ms']} / p99 {row['direct']['p99_ms']} ms)")
        for name in (on, off):
            figures = row[name]
            print(f"  {name:22}{figures['added_p50_ms']:>14.3f}{figures['added_p99_ms']:>14.3f}")
        diff, ratio = row["on_minus_off"], row["on_over_off"]
        print(f"  {'on − off':22}{diff['added_p50_ms']:>14.3f}{diff['added_p99_ms']:>14.3f}")
        print(f"  {'on / off':22}{_ratio(ratio['added_p50_ms'])}{_ratio(ratio['added_p99_ms'])}")
        for name in (on, off):
            rounds = row[name]
            p50s = " ".join(f"{value:.2f}" for value in rounds["rounds_added_p50_ms"])
            p99s = " ".join(f"{value:.1f}" for value in rounds["rounds_added_p99_ms"])
            print(f"    {name} per round: p50 {p50s} · p99 {p99s}")


def _ratio(value: float | None) -> str:
    return f"{'—' if value is None else f'{value:.2f}×':>14}"
