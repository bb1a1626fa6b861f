"""The real ``spendgate`` console script: ``config check``, ``config init`` and ``version``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import openai
import pytest

from cli_support import spendgate_cli
from serve_support import serve_process
from spendgate.mock_upstream.runner import MockUpstreamThread
from spendgate.mock_upstream.server import fingerprint


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return spendgate_cli(*args, **{"COLUMNS": "200", **env})


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


# One provider whose key variable is unset, one model, no keys: valid, but nobody can get in.
NO_WAY_IN = (
    "providers: [{id: oa, kind: openai, base_url: 'http://127.0.0.1:9/v1',"
    " api_key_env: OA_UPSTREAM_KEY}]\n"
    "models: [{id: gpt-4o-mini, provider: oa}]\n"
)
NO_WAY_IN_WARNINGS = (
    "provider oa: environment variable OA_UPSTREAM_KEY is not set",
    "no API keys: none under keys: and none created through the admin API",
    "no admin access: SPENDGATE_ADMIN_TOKEN is not set in this environment",
)


@pytest.mark.parametrize("columns", ["80", "120"])
def test_check_warns_without_failing(tmp_path: Path, columns: str) -> None:
    """No key, no admin access and an unset variable are warnings: exit 0, one line each."""
    path = tmp_path / "spendgate.yaml"
    path.write_text(NO_WAY_IN)
    result = spendgate_cli("config", "check", "-c", str(path), cwd=tmp_path, COLUMNS=columns)
    assert result.returncode == 0, result.stderr
    assert "Config OK" in result.stdout
    assert "Warnings (the file is valid, but these will not work):" in result.stdout
    lines = result.stdout.splitlines()
    for warning in NO_WAY_IN_WARNINGS:
        # Never wrapped, whatever the width: each warning is one greppable line.
        assert any(line.startswith(f"  - {warning}") for line in lines), warning
    assert "No warnings." not in result.stdout

    as_json = spendgate_cli("config", "check", "-c", str(path), "--json", cwd=tmp_path)
    assert as_json.returncode == 0
    summary = json.loads(as_json.stdout)
    assert summary["valid"] is True
    assert "errors" not in summary  # errors are for invalid files only
    assert [w.split(",")[0].split(":")[0] for w in summary["warnings"]] == [
        "provider oa",
        "no API keys",
        "no admin access",
    ]


def test_check_warnings_go_as_the_environment_provides(tmp_path: Path) -> None:
    """A usable key with the admin permission is admin access; a set variable is no warning."""
    path = tmp_path / "spendgate.yaml"
    path.write_text(NO_WAY_IN + "keys: [{id: ops, key_env: OPS_KEY, permissions: [admin]}]\n")
    unset = spendgate_cli("config", "check", "-c", str(path), "--json", cwd=tmp_path)
    assert [w.split(":")[0] for w in json.loads(unset.stdout)["warnings"]] == [
        "provider oa",
        "key ops",
        "no admin access",
    ]
    env = {"OA_UPSTREAM_KEY": "sk-upstream", "OPS_KEY": "sg-ops-secret"}
    result = spendgate_cli("config", "check", "-c", str(path), cwd=tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert "No warnings." in result.stdout
    assert "sg-ops-secret" not in result.stdout
    assert "sk-upstream" not in result.stdout


def test_check_counts_keys_created_through_the_admin_api(tmp_path: Path) -> None:
    """Keys in the config's database are keys too: with one (with the admin permission),
    neither "no API keys" nor "no admin access" is warned."""
    token = {"SPENDGATE_ADMIN_TOKEN": "sg-admin-test-token"}
    with serve_process(tmp_path, NO_WAY_IN, token) as served:
        created = spendgate_cli(
            "--url", served.url, "keys", "create", "--id", "ops", "--permissions", "admin", **token
        )
        assert created.returncode == 0, created.stderr
    path = tmp_path / "spendgate.yaml"  # what serve_process wrote and served
    result = spendgate_cli("config", "check", "-c", str(path), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = json.loads(result.stdout)["warnings"]
    assert [w.split(":")[0] for w in warnings] == ["provider oa"]


def test_init_writes_a_starter_that_checks_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "spendgate.yaml"
    written = spendgate_cli("config", "init", str(path))
    assert written.returncode == 0, written.stderr
    text = path.read_text()
    for section in ("database_url:", "providers:", "models:", "routing:", "keys:", "budgets:"):
        assert f"\n{section}" in text
    assert "api_key_env: OPENAI_API_KEY" in text
    assert "key_env: ALICE_KEY" in text
    assert text.count("\n#") > 20  # commented

    # Valid as written; what it needs from the environment is named, not failed on.
    bare = spendgate_cli("config", "check", "-c", str(path), cwd=tmp_path)
    assert bare.returncode == 0, bare.stderr
    for variable in ("OPENAI_API_KEY", "ALICE_KEY", "SPENDGATE_ADMIN_TOKEN"):
        assert f"{variable} is not set" in bare.stdout
    env = {"OPENAI_API_KEY": "sk-x", "ALICE_KEY": "sg-alice", "SPENDGATE_ADMIN_TOKEN": "sg-adm"}
    ready = spendgate_cli("config", "check", "-c", str(path), cwd=tmp_path, **env)
    assert ready.returncode == 0, ready.stderr
    assert "No warnings." in ready.stdout

    path.write_text("# mine\n")
    again = spendgate_cli("config", "init", str(path))
    assert again.returncode == 1
    assert "exists; pass --force to overwrite it" in again.stderr
    assert path.read_text() == "# mine\n"
    forced = spendgate_cli("config", "init", str(path), "--force")
    assert forced.returncode == 0, forced.stderr
    assert path.read_text() == text


def test_init_starter_serves_against_the_mock_upstream(tmp_path: Path) -> None:
    env = {"OPENAI_API_KEY": "sk-x", "ALICE_KEY": "sg-alice", "SPENDGATE_ADMIN_TOKEN": "sg-adm"}
    with MockUpstreamThread(latency_ms=0) as mock:
        written = spendgate_cli("config", "init", "--base-url", mock.openai_base_url, cwd=tmp_path)
        assert written.returncode == 0, written.stderr
        starter = (tmp_path / "spendgate.yaml").read_text()
        with serve_process(tmp_path, starter, env) as served:
            client = openai.OpenAI(base_url=served.url + "/v1", api_key="sg-alice", max_retries=0)
            reply = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
            budgets = spendgate_cli("--url", served.url, "budgets", "list", "--json", **env)
    assert reply.choices[0].message.content
    assert mock.requests_by_path["/v1/chat/completions"] == 1
    assert mock.stats.credentials[fingerprint("sk-x")] == 1  # the provider key, from OPENAI_API_KEY
    assert budgets.returncode == 0, budgets.stderr
    assert "acme-daily-usd" in budgets.stdout
