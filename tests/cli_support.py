"""The real ``spendgate`` console script run to completion in a subprocess, as a user runs it
(``spendgate serve`` kept running is ``serve_support.serve_process``). The environment is the
test's own without any ``SPENDGATE_*`` variable, plus what the test passes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from admin_support import SPENDGATE

__all__ = ["spendgate_cli"]


def spendgate_cli(
    *args: str, cwd: Path | None = None, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``spendgate ARGS`` to completion; stdout is a pipe, never a terminal."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SPENDGATE_")}
    environ.update({"NO_COLOR": "1"}, **env)
    return subprocess.run(
        [SPENDGATE, *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
