"""``spendgate serve`` as a user runs it: the installed console script in a subprocess, on a free
loopback port, its stderr (the log) captured in a file the test reads while it runs."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from admin_support import SPENDGATE

__all__ = ["RunningServe", "free_port", "serve_process"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RunningServe:
    url: str  # its root: http://127.0.0.1:<port>
    process: subprocess.Popen[bytes]
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text()

    def wait_for(self, text: str, timeout_s: float = 10.0) -> str:
        """The log once it holds ``text`` (lines are written as things happen)."""
        deadline = time.monotonic() + timeout_s
        while text not in (log := self.log()):
            assert time.monotonic() < deadline, f"{text!r} never logged:\n{log}"
            assert self.process.poll() is None, f"serve exited:\n{log}"
            time.sleep(0.05)
        return log


@contextmanager
def serve_process(
    directory: Path, config: str, env: Mapping[str, str], *args: str
) -> Iterator[RunningServe]:
    """Run ``spendgate serve --config <directory>/spendgate.yaml`` with ``args`` and only
    ``env`` besides the basics (PATH, HOME), until it answers ``/healthz``; stopped (SIGTERM,
    a clean shutdown) on exit."""
    path = directory / "spendgate.yaml"
    path.write_text(config)
    port = free_port()
    stderr = directory / "serve.stderr"
    base = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    with stderr.open("wb") as sink:
        process = subprocess.Popen(
            [SPENDGATE, "serve", "--config", str(path), "--port", str(port), *args],
            cwd=directory,
            env={**base, **env},
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    running = RunningServe(f"http://127.0.0.1:{port}", process, stderr)
    try:
        deadline = time.monotonic() + 30
        while not _answers(running.url + "/healthz"):
            assert process.poll() is None, f"serve exited:\n{running.log()}"
            assert time.monotonic() < deadline, f"serve did not start:\n{running.log()}"
            time.sleep(0.05)
        yield running
    finally:
        process.terminate()
        process.wait(30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False
