"""A private ``redis-server`` that a test may kill and start again (the shared one at
127.0.0.1:6379 must never be stopped: other tests use it).

It runs on a free loopback port in a temporary directory, without persistence (``--save ''``,
``--appendonly no``): started again after a kill, it comes back **empty**, the harsh case of a
Redis restart. Skipped, saying why, where ``redis-server`` or redis-py is missing.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from serve_support import free_port

__all__ = ["PrivateRedis", "private_redis"]


def _server_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        pytest.skip("outage tests: redis-server is not installed")
    return found


class PrivateRedis:
    def __init__(self, directory: Path) -> None:
        self.binary = _server_binary()
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it (again, on the same port) and wait until it answers PING."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        log = self.directory / f"redis-{self.starts}.log"
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory),
             "--logfile", str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self.answers():
            assert self.process.poll() is None, f"redis-server exited: {log.read_text()}"
            assert time.monotonic() < deadline, "redis-server did not answer within 10 s"
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def answers(self) -> bool:
        try:
            from redis import Redis
        except ImportError:
            pytest.skip("outage tests: redis-py is not installed")
        client = Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except Exception:  # not up (yet): any error means no
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


@contextmanager
def private_redis(directory: Path) -> Iterator[PrivateRedis]:
    """A running private server; killed on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    server = PrivateRedis(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
