"""The real ``spendgate`` console script: ``config check`` and ``version``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = shutil.which("spendgate", path=str(Path(sys.executable).parent)) or shutil.which(
    "spendgate"
)


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    assert SCRIPT is not None, "the spendgate console script is not installed"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SPENDGATE_")}
    environ.update({"COLUMNS": "200", "NO_COLOR": "1"}, **env)
    return subprocess.run(
        [SCRIPT, *args], capture_output=True, text=True, env=environ, timeout=60, check=False
    )


def test_demo_config_is_valid_and_shows_models() -> None:
    result = run("config", "check")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Config OK <built-in demo config>" in out
    for model in ("gpt-4o-mini", "gpt-4o", "claude-opus-4"):
        assert model in out
    assert "0.15 / 0.6 / 0.075" in out  # gpt-4o-mini, USD per 1M in / out / cached
    assert "priced (catalog, exact)" in out
    assert "principal-daily-usd" in out
    assert "demo-alice" in out
    assert "UNPRICED" not in out


def test_secrets_are_never_printed() -> None:
    result = run("config", "check", SPENDGATE_DEMO_KEY="sg-very-secret-value")
    assert result.returncode == 0, result.stderr
    assert "$SPENDGATE_DEMO_KEY set" in result.stdout
    assert "sg-very-secret-value" not in result.stdout + result.stderr


def test_bad_file_exits_1_with_path_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "spendgate.yaml"
    path.write_text(
        "budgets:\n"
        "  - {id: acme-daily, scope: {kind: project, id: acme}, metric: usd,\n"
        "     interval: daily, hard_limit: -3}\n"
    )
    result = run("config", "check", "--config", str(path))
    assert result.returncode == 1
    assert f"{path}:3: budgets[0] (acme-daily).hard_limit: must be greater than 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_exits_1(tmp_path: Path) -> None:
    result = run("config", "check", "-c", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert "nope.yaml: no such file" in result.stderr


def test_config_from_environment_and_unpriced_model(tmp_path: Path) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text(
        "providers: [{id: local, kind: openai, base_url: 'http://localhost:8000/v1',"
        " api_key_env: LOCAL_KEY}]\n"
        "models: [{id: my-finetune, provider: local}]\n"
    )
    result = run("config", "check", SPENDGATE_CONFIG=str(path))
    assert result.returncode == 0, result.stderr
    assert f"Config OK {path}" in result.stdout
    assert "UNPRICED" in result.stdout
    assert "LOCAL_KEY is not set" in result.stdout  # a problem, not a crash


def test_json_output() -> None:
    result = run("config", "check", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["valid"] is True
    tiers = {m["id"]: m["cost_tier"] for m in summary["models"]}
    assert tiers == {"gpt-4o-mini": "low", "gpt-4o": "medium", "claude-opus-4": "high"}
    assert all(m["priced"] for m in summary["models"])
    assert [k["id"] for k in summary["keys"]] == ["demo-alice", "demo-ops"]


@pytest.mark.parametrize("args", [("config", "check", "--json"), ("config", "check")])
def test_json_and_text_errors(tmp_path: Path, args: tuple[str, ...]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("routing: {mode: strict}\n")
    result = run(*args, "--config", str(path))
    assert result.returncode == 1
    text = result.stdout + result.stderr
    assert "routing.mode: unknown value 'strict'" in text


def test_version() -> None:
    result = run("version")
    assert result.returncode == 0
    assert result.stdout.startswith("spendgate ")
