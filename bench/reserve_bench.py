"""How long ``Governor.reserve`` and ``Governor.settle`` take on the in-memory ledger with 5, 20
and 100 applicable policies (the same governor and request as ``plan_bench.py``).

Run: ``taskset -c 0 .venv/bin/python bench/reserve_bench.py [--pairs N]``. Each pair reserves a
decision planned beforehand and settles it at once; medians in microseconds, after a warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

from plan_bench import BODY, SCOPES, governor_with

from spendgate import Usage

USAGE = Usage(input_tokens=120, output_tokens=80)
WARM_UP = 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=3000)
    args = parser.parse_args()
    print(f"reserve + settle, {args.pairs} pairs each (µs, median)")
    print(f"{'policies':>9} {'reserve':>8} {'settle':>8}")
    for count in (5, 20, 100):
        governor = governor_with(count)
        now = datetime.now(UTC)
        decisions = [governor.plan(BODY, SCOPES, now) for _ in range(args.pairs + WARM_UP)]
        reserve, settle = [], []
        for decision in decisions:
            start = time.perf_counter_ns()
            governor.reserve(decision)
            reserved = time.perf_counter_ns()
            governor.settle(decision, USAGE)
            settled = time.perf_counter_ns()
            reserve.append((reserved - start) / 1000)
            settle.append((settled - reserved) / 1000)
        print(
            f"{count:>9} {statistics.median(reserve[WARM_UP:]):>8.1f}"
            f" {statistics.median(settle[WARM_UP:]):>8.1f}"
        )


if __name__ == "__main__":
    main()
