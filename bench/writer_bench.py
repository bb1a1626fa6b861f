"""What the journal writer costs the interpreter that plans requests.

Run: ``.venv/bin/python bench/writer_bench.py [--decisions 30000]``.

Plans, reserves and settles ``--decisions`` requests on a real ``Governor`` (20 projects of 10
principals, 2 models, 10 agents, all in the current hour, as live traffic is), once with no
journal and once journaling into SQLite, and reports both rates and the difference per
decision. The writer runs on its own thread, so what it costs shows up here as the GIL it
takes from planning: the time the gateway's event loop would lose.
"""

from __future__ import annotations

import argparse
import random
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

CONFIG = """
providers: [{id: alpha, kind: mock}]
models:
  - {id: gpt-4o-mini, provider: alpha}
  - {id: gpt-4o, provider: alpha}
routing: {default_model: gpt-4o, mode: enforced, smart_routing: false}
database_url: "sqlite:///DATABASE"
"""


def run(count: int, database: Path | None) -> float:
    """Decisions per second, journal included when ``database`` is given."""
    text = CONFIG.replace("DATABASE", str(database or "unused.db"))
    config = parse_config(text, "bench.yaml")
    journal = Journal(config.database_url) if database is not None else None
    governor = Governor.from_config(config, journal=journal)
    random.seed(7)
    now = datetime.now(UTC)
    started = time.perf_counter()
    for index in range(count):
        project = random.randrange(20)
        scopes = RequestScopes.of(
            project=f"project-{project}",
            principal=f"u{project}-{random.randrange(10)}",
            api_key=f"key-{project}",
            agent=f"agent-{random.randrange(10)}",
        )
        at = now + timedelta(milliseconds=index)
        body = {"model": random.choice(["gpt-4o-mini", "gpt-4o"]), "max_tokens": 200,
                "messages": [{"role": "user", "content": "hello"}]}  # fmt: skip
        decision = governor.plan(body, scopes, now=at)
        if governor.reserve(decision, at).ok:
            governor.settle(decision, Usage(input_tokens=100, output_tokens=20), latency_ms=800.0)
    if journal is not None:
        journal.flush(600)
    elapsed = time.perf_counter() - started
    if journal is not None:
        journal.close(60)
    return count / elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=30_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        bare = run(args.decisions, None)
        journaled = run(args.decisions, Path(folder) / "writer.db")
    print(f"decisions/s without a journal   {bare:>9,.0f}")
    print(f"decisions/s journaled (SQLite)  {journaled:>9,.0f}")
    print(f"the journal's cost per decision {1e6 / journaled - 1e6 / bare:>9,.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
