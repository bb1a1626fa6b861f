"""What one alert-detector pass costs the event loop: the bench gateway's 21 budget policies,
1,000 requests settled through a real Governor, then one event pass over them (the detector
runs this off the request path, at most once a second).

Run: ``.venv/bin/python bench/detector_bench.py [--requests 1000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import string
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from spendgate.alerting import AlertDetector
from spendgate.config import parse_config
from spendgate.domain.health import HealthBoard
from spendgate.domain.pricing import Usage
from spendgate.governor import Governor

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from alerts_bench import ALERTING_BUDGET  # noqa: E402 (a sibling, found through the path)

BODY = {"model": "gpt-4o-mini", "max_tokens": 256, "messages": [{"role": "user", "content": "hi"}]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    template = string.Template((BENCH / "gateway" / "spendgate.bench.yaml").read_text())
    text = template.substitute(UPSTREAM_PORT=1, DATABASE_URL="sqlite://") + ALERTING_BUDGET
    config = parse_config(text, "bench.yaml")
    governor = Governor.from_config(config)
    detector = AlertDetector(governor, HealthBoard(), config.alerts, lambda key: None)
    governor.observer = detector
    scopes = config.api_keys()[0].scopes("bench-agent", "bench-s1")
    passes, settles = [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for _ in range(args.requests):
            decision = governor.plan(BODY, scopes)
            governor.reserve(decision)
            governor.settle(decision, Usage(input_tokens=20, output_tokens=30))
        settles.append((time.perf_counter() - started) / args.requests * 1e6)
        started = time.perf_counter()
        detector.evaluate(datetime.now(UTC), full=False)
        passes.append((time.perf_counter() - started) * 1e3)
    evaluations = len(decision.budget_evaluations)
    print(f"{evaluations} applicable policies; plan + reserve + settle: "
          f"{statistics.median(settles):.0f} µs per request (median of {args.rounds})")  # fmt: skip
    print(f"event pass over {args.requests:,} requests: {statistics.median(passes):.2f} ms "
          f"(median; rounds {', '.join(f'{p:.2f}' for p in passes)})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
