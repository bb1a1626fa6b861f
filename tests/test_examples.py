"""The examples a newcomer runs first keep running: each is executed as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_planning_example_runs_to_the_approval_stop() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "plan.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    # The budget-pressure loop ends at the hard stop, which asks for an approval.
    assert "approval_required" in result.stdout
