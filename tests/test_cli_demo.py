"""`spendgate demo --no-serve`: the real console script, mock upstream and gateway, end to end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _busy(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_demo_sends_varied_traffic_and_summarises(tmp_path: Path) -> None:
    if _busy(9100):
        pytest.skip("port 9100 (the demo config's mock upstream) is in use")
    executable = str(Path(sys.executable).with_name("spendgate"))
    result = subprocess.run(
        [executable, "demo", "--no-serve", "--port", str(_free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "160"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "6 requests" in out
    assert "1 blocked" in out
    assert "escalate" in out
    assert "degrade" in out
    assert (tmp_path / "spendgate-demo.db").exists()  # decisions were journaled
