"""How fast the console's pages answer over a big journal (issue 12's target: < 200 ms with a
million decisions).

Run: ``.venv/bin/python bench/console_bench.py [--decisions 1000000] [--keep DIR]``.

1. Writes ``--decisions`` routing decisions through the real write path (``Governor.plan`` /
   ``reserve`` / ``settle`` into a SQLite ``Journal``, whose writer keeps the hourly rollups),
   spread over the last 90 days across 20 projects of 10 principals each (a few of them doing
   most of the work, as in real traffic), 3 models and 10 agents.
   Waiting for the writer every 20,000 decisions keeps its queue bounded (nothing dropped).
   ``--keep DIR`` keeps (and on a later run reuses) the database.
2. Serves it with ``spendgate serve`` on a free port and signs in to the console.
3. Times each page (median and worst of 15 requests after one warm-up), as the admin token and
   as one project's key, and prints the table.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from spendgate.config import parse_config
from spendgate.domain.pricing import Usage
from spendgate.domain.scopes import RequestScopes
from spendgate.governor import Governor
from spendgate.store.journal import Journal

ADMIN_TOKEN = "sg-console-bench-admin"
KEY = "sg-console-bench-project-key"
CONFIG = """
providers: [{id: alpha, kind: mock}]
models:
  - {id: gpt-4o-mini, provider: alpha}
  - {id: gpt-4o, provider: alpha}
  - {id: claude-opus-4, provider: alpha}
routing: {default_model: gpt-4o, mode: enforced, smart_routing: false}
keys: [{id: p7, key_env: BENCH_KEY, principal: u7-0, project: project-7}]
database_url: "sqlite:///DATABASE"
"""
PAGES = [
    "/console/",
    "/console/?window=90d",
    "/console/?window=7d&bucket=hour&tz=Europe/Prague",
    "/console/?window=90d&tz=Europe/Prague",
    "/console/?window=30d&bucket=hour&tz=America/New_York",
    "/console/insights",
    "/console/budgets",
    "/console/approvals",
    "/console/alerts",
    "/console/models",
]


def generate(database: Path, config_text: str, count: int) -> None:
    config = parse_config(config_text, "bench.yaml")
    journal = Journal(config.database_url)
    governor = Governor.from_config(config, journal=journal)
    random.seed(7)
    now = datetime.now(UTC)
    models = ["gpt-4o-mini", "gpt-4o", "claude-opus-4"]
    started = time.perf_counter()
    for index in range(count):
        project = random.randrange(20)
        person = min(int(random.paretovariate(1.2)) - 1, 9)  # skewed: u0 busiest
        scopes = RequestScopes.of(
            project=f"project-{project}",
            principal=f"u{project}-{person}",
            api_key=f"key-{project}",
            agent=f"agent-{random.randrange(10)}",
        )
        at = now - timedelta(seconds=random.uniform(0, 90 * 86400))
        body = {"model": random.choice(models), "max_tokens": 200,
                "messages": [{"role": "user", "content": "hello"}]}  # fmt: skip
        decision = governor.plan(body, scopes, now=at)
        if governor.reserve(decision, at).ok:
            governor.settle(
                decision,
                Usage(input_tokens=random.randrange(20, 2000), output_tokens=random.randrange(200)),
                latency_ms=random.uniform(200, 3000),
            )
        if index % 20_000 == 19_999:
            journal.flush(600)
            rate = (index + 1) / (time.perf_counter() - started)
            print(f"  {index + 1:,} decisions written ({rate:,.0f}/s)", file=sys.stderr)
    journal.close(600)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def sign_in(url: str, credential: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60, follow_redirects=False)
    form = client.get("/console/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None
    signed = client.post("/console/login", data={"csrf": token.group(1), "credential": credential})
    assert signed.status_code == 303, signed.text
    return client


def time_pages(client: httpx.Client) -> list[tuple[str, float, float]]:
    rows = []
    for page in PAGES:
        assert client.get(page).status_code == 200, page  # warm-up
        times = []
        for _ in range(15):
            started = time.perf_counter()
            response = client.get(page)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, page
        rows.append((page, statistics.median(times), max(times)))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="a folder to keep (and reuse) the database in")
    args = parser.parse_args(argv)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="spendgate-console-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / f"console-{args.decisions}.db"
    config_text = CONFIG.replace("DATABASE", str(database))
    config_file = folder / "console-bench.yaml"
    config_file.write_text(config_text)
    if not database.exists():
        print(f"writing {args.decisions:,} decisions to {database}", file=sys.stderr)
        generate(database, config_text, args.decisions)
    port = free_port()
    env = {**os.environ, "SPENDGATE_ADMIN_TOKEN": ADMIN_TOKEN, "BENCH_KEY": KEY}
    spendgate = str(Path(sys.executable).with_name("spendgate"))
    server = subprocess.Popen(
        [spendgate, "serve", "--config", str(config_file), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        admin, project = sign_in(url, ADMIN_TOKEN), sign_in(url, KEY)
        try:
            decisions = httpx.get(
                url + "/api/v1/usage/summary", params={"window": "90d"},
                headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
            ).json()["requests"]  # fmt: skip
            print(f"journal: {decisions:,} decisions in the last 90 days")
            print(f"{'page':52}{'admin ms':>10}{'max':>8}{'key ms':>10}{'max':>8}")
            for (page, median, worst), (_, k_median, k_worst) in zip(
                time_pages(admin), time_pages(project), strict=True
            ):
                print(f"{page:52}{median:>10.1f}{worst:>8.1f}{k_median:>10.1f}{k_worst:>8.1f}")
        finally:
            admin.close()
            project.close()
    finally:
        server.terminate()
        server.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
