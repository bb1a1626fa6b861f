"""The real ``spendgate`` console script in a subprocess, as a user runs it: one command to
completion (``spendgate_cli``), or ``spendgate serve`` kept running while a test talks to it
(``spendgate_serve``). The environment is the test's own without any ``SPENDGATE_*``
variable, plus what the test passes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

__all__ = ["SPENDGATE", "free_port", "spendgate_cli", "spendgate_serve"]

SPENDGATE = Path(sys.executable).with_name("spendgate")


def _environ(env: Mapping[str, str]) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SPENDGATE_")}
    environ.update({"NO_COLOR": "1"}, **env)
    return environ


def free_port() -> int:
    """A loopback port nothing listens on (free when asked; a test binds it right away)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def spendgate_cli(
    *args: str, cwd: Path | None = None, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``spendgate ARGS`` to completion; stdout is a pipe, never a terminal."""
    return subprocess.run(
        [str(SPENDGATE), *args],
        cwd=cwd,
        env=_environ(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def spendgate_serve(*args: str, cwd: Path, env: Mapping[str, str]) -> Iterator[str]:
    """``spendgate serve ARGS`` on a free loopback port until the block ends; yields its root
    URL once ``/healthz`` answers. Its output goes to files in ``cwd`` (shown on failure)."""
    port = free_port()
    log = cwd / f"serve-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(SPENDGATE), "serve", *args, "--port", str(port)],
            cwd=cwd,
            env=_environ(env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"serve exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"serve did not start: {log.read_text()}"
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(15)
