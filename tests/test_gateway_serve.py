"""``spendgate serve`` as installed (the real console script, in a subprocess): several workers
would each keep their own in-memory ledger and admit up to every limit, so ``--workers N > 1``
is refused with a clear message rather than overspending."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SPENDGATE = Path(sys.executable).with_name("spendgate")


def _serve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SPENDGATE_CONFIG"}
    return subprocess.run(
        [str(SPENDGATE), "serve", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_several_workers_on_the_default_sqlite_config_are_refused(tmp_path: Path) -> None:
    result = _serve("--workers", "2", "--port", "1", cwd=tmp_path)
    assert result.returncode == 2
    assert "--workers > 1 needs a shared ledger" in result.stderr
    assert "SQLite" in result.stderr
    assert "ledger_url: redis://" in result.stderr
    assert "--workers 1" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())  # refused before opening (creating) the database


def test_several_workers_are_refused_whatever_the_database(tmp_path: Path) -> None:
    """No shared ledger exists yet, so a server database does not make N workers safe; and
    its URL (which may hold a password) is not echoed."""
    config = tmp_path / "spendgate.yaml"
    config.write_text(
        "database_url: postgresql://spend:hunter2-secret@db.invalid/spendgate\n"
        "providers: [{id: mock, kind: mock, base_url: 'http://127.0.0.1:9/v1'}]\n"
        "models: [{id: gpt-4o-mini, provider: mock}]\n"
    )
    result = _serve("--config", str(config), "--workers", "3", cwd=tmp_path)
    assert result.returncode == 2
    assert "--workers > 1 needs a shared ledger" in result.stderr
    assert "hunter2-secret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
