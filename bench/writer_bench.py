"""What journaling costs the interpreter that plans requests: writer thread vs writer process.

Run: ``.venv/bin/python bench/writer_bench.py [--decisions 5000] [--rounds 5]``.

Plans, reserves and settles ``--decisions`` requests on a real ``Governor`` with the gateway
bench's config (20 applicable budget policies, five candidate models), with no journal, with
the journal's writer on a thread of this process (``WriterSettings(process=False)``) and with
its writer process (the default), in interleaved rounds (the machine is shared: medians, not
single runs). For each it reports the CPU time of *this* process per request (every thread
included: a writer thread's encoding and commits count, since they take the GIL from the
event loop), and, for the writer process, the CPU that process used per request (reaped on
close). The journal's cost on the gateway's side is a mode's figure minus the no-journal one.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from spendgate.config import parse_config
from spendgate.domain.pricing import Usage
from spendgate.domain.scopes import RequestScopes
from spendgate.governor import Governor
from spendgate.store.journal import Journal
from spendgate.store.writer import WriterSettings

CONFIG = Path(__file__).parent / "gateway" / "spendgate.bench.yaml"
BODY = {"model": "gpt-4o-mini", "max_tokens": 200, "messages": [{"role": "user", "content": "hi"}]}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(count: int, mode: str, folder: Path) -> tuple[float, float]:
    """(CPU µs of this process, CPU µs of the writer process) per request."""
    database = folder / f"{mode}-{time.monotonic_ns()}.db"
    text = CONFIG.read_text().replace("${DATABASE_URL}", f"sqlite:///{database}")
    config = parse_config(text.replace("${UPSTREAM_PORT}", "9"), "bench.yaml")
    journal = None
    if mode != "none":
        journal = Journal(config.database_url, settings=WriterSettings(process=mode == "process"))
    governor = Governor.from_config(config, journal=journal)
    scopes = RequestScopes.of(
        project="bench-project", principal="bench-user", api_key="bench", agent="a", session="s"
    )
    now = datetime.now(UTC)
    children_before = _children_cpu()
    started = time.process_time()
    for index in range(count):
        at = now + timedelta(milliseconds=index)
        decision = governor.plan(BODY, scopes, now=at)
        if governor.reserve(decision, at).ok:
            governor.settle(decision, Usage(input_tokens=100, output_tokens=20), latency_ms=80.0)
    if journal is not None:
        journal.flush(600)
    spent = time.process_time() - started
    if journal is not None:
        journal.close(60)
    return spent / count * 1e6, (_children_cpu() - children_before) / count * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ.setdefault("SPENDGATE_BENCH_UPSTREAM_KEY", "unused")
    os.environ.setdefault("SPENDGATE_BENCH_KEY", "sk-bench-unused")
    os.environ.setdefault("SPENDGATE_BENCH_STREAM_KEY", "sk-bench-stream-unused")
    modes = ("none", "thread", "process")
    own: dict[str, list[float]] = {mode: [] for mode in modes}
    writer: dict[str, list[float]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory() as folder:
        run(500, "process", Path(folder))  # warm up imports and caches
        for _ in range(args.rounds):
            for mode in modes:
                mine, theirs = run(args.decisions, mode, Path(folder))
                own[mode].append(mine)
                writer[mode].append(theirs)
    bare = statistics.median(own["none"])
    print(f"CPU per request, median of {args.rounds} rounds of {args.decisions:,}")
    print(f"{'mode':<10}{'this process':>14}{'journal cost':>14}{'writer process':>16}")
    for mode in modes:
        mine = statistics.median(own[mode])
        theirs = statistics.median(writer[mode])
        print(f"{mode:<10}{mine:>11.1f} µs{mine - bare:>11.1f} µs{theirs:>13.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
