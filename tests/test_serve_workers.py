"""``spendgate serve --workers N`` (skipped, saying why, without Redis): each worker listens
with a socket of its own on the port, so connections spread across them; a worker that dies
is replaced; a worker that cannot start stops them all with a clear error."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from admin_support import SPENDGATE
from redis_support import REDIS_URL
from serve_support import free_port, serve_process
from spendgate.mock_upstream.runner import MockUpstreamThread

KEY = "sg-workers-acme"
ENV = {"ACME_KEY": KEY}


def config(mock_url: str, database: str, prefix: str) -> str:
    return f"""
providers: [{{id: alpha, kind: openai, base_url: "{mock_url}", api_key_env: ACME_KEY}}]
models: [{{id: gpt-4o-mini, provider: alpha}}]
routing: {{default_model: gpt-4o-mini}}
keys: [{{id: acme, key_env: ACME_KEY, principal: alice, project: acme}}]
database_url: "{database}"
ledger_url: "{REDIS_URL}"
ledger_prefix: "{prefix}"
"""


def _pids(url: str, connections: int) -> Counter[int]:
    """Which worker answered each of ``connections`` new connections."""
    answered: Counter[int] = Counter()
    for _ in range(connections):
        with httpx.Client() as client:  # a connection of its own
            answered[client.get(url + "/healthz").json()["pid"]] += 1
    return answered


def test_connections_spread_across_the_workers_and_a_dead_one_is_replaced(
    tmp_path: Path, redis_prefix: str
) -> None:
    with MockUpstreamThread(latency_ms=0) as mock:
        text = config(mock.openai_base_url, f"sqlite:///{tmp_path / 'w.db'}", redis_prefix)
        with serve_process(tmp_path, text, ENV, "--workers", "2") as gateway:
            deadline = time.monotonic() + 20
            while len(answered := _pids(gateway.url, 40)) < 2:  # the second one is up
                assert time.monotonic() < deadline, answered
            # Each its share (the kernel hashes connections across the sockets): fewer than
            # 8 of 40 for either has a chance of about 2 in 100,000.
            assert min(answered.values()) >= 8, answered
            victim = next(iter(answered))
            os.kill(victim, signal.SIGKILL)
            gateway.wait_for(f"worker {victim} exited", timeout_s=10)
            deadline = time.monotonic() + 20
            while True:
                pids = set(_pids(gateway.url, 20))
                if len(pids) == 2 and victim not in pids:
                    break
                assert time.monotonic() < deadline, pids
            response = httpx.post(
                gateway.url + "/v1/chat/completions",
                headers={"authorization": f"Bearer {KEY}"},
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert response.status_code == 200


def test_a_worker_that_cannot_start_stops_them_all(tmp_path: Path, redis_prefix: str) -> None:
    # The journal's folder does not exist: each worker fails building its gateway.
    missing = tmp_path / "no" / "such" / "folder" / "w.db"
    path = tmp_path / "spendgate.yaml"
    path.write_text(config("http://127.0.0.1:9/v1", f"sqlite:///{missing}", redis_prefix))
    base = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    argv = [SPENDGATE, "serve", "--config", str(path), "--port", str(free_port())]
    try:
        done = subprocess.run(
            [*argv, "--workers", "2"], env={**base, **ENV}, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("serve kept restarting a worker that cannot start")
    assert done.returncode == 1
    assert "a worker exited while starting" in done.stderr
