"""The real ``spendgate`` command (subprocess) against a running gateway: ``models`` and
``decisions`` tables and their exact ``--json``, global options and their env vars, and the
one-line errors (daemon unreachable, auth refused, not allowed, validation)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from admin_support import SPENDGATE, AdminGateway, admin_gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("cli")) as running:
        assert running.chat("alice", "Say hello.").status_code == 200
        assert running.chat("dave", "Say hello.").status_code == 200
        running.flush()
        yield running


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


def _failed(done: subprocess.CompletedProcess[str]) -> str:
    """The error: exit 1, nothing on stdout, exactly one line on stderr."""
    assert done.returncode == 1, done.stdout
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_models_status_table_and_json(gw: AdminGateway) -> None:
    out = _ok(gw.cli("models", "status"))
    assert "Default model: gpt-4o" in out
    assert "failover: on" in out
    assert "alpha" in out
    assert "ALPHA_KEY (set)" in out
    assert "healthy / circuit closed" in out
    assert "sk-alpha-upstream-secret" not in out
    data = json.loads(_ok(gw.cli("models", "status", "--json")))
    api = gw.get("/models/status").json()
    assert data["providers"][0]["id"] == api["providers"][0]["id"]
    assert data["default_model"] == api["default_model"]


def test_models_list_table_and_json(gw: AdminGateway) -> None:
    out = _ok(gw.cli("models", "list"))
    for text in ("gpt-4o-mini", "claude-opus-4", "json, tools, vision", "catalog, exact", "0.15"):
        assert text in out
    data = json.loads(_ok(gw.cli("models", "list", "--json")))
    assert data == gw.get("/models").json()


def test_models_explain(gw: AdminGateway) -> None:
    out = _ok(
        gw.cli(
            "models", "explain", "Prove step by step that 2+2=4", "--project", "acme",
            "--principal", "alice", "--task-class", "primary_interactive", "--max-tokens", "300",
        )
    )  # fmt: skip
    assert "Chosen model:  gpt-4o-mini on alpha" in out
    assert "Action:        degrade" in out
    assert "simple_prompt_cheaper_model" in out
    assert "Complexity" in out
    assert "reasoning_cues" in out  # a complexity term with its detail
    assert "Candidates" in out
    assert "chosen" in out
    assert "Budget evaluations" in out
    assert "principal-daily-usd" in out
    assert "within budget" in out
    data = json.loads(_ok(gw.cli("models", "explain", "Hi", "--model", "gpt-4o-mini", "--json")))
    assert data["requested_model"] == "gpt-4o-mini"
    assert data["estimate"]["output_tokens_upper"] == 16384


def test_models_test_connection(gw: AdminGateway) -> None:
    out = _ok(gw.cli("models", "test-connection"))
    assert "Connection test" in out
    assert "accepted" in out
    data = json.loads(_ok(gw.cli("models", "test-connection", "alpha", "--json")))
    assert data["ok"] is True
    assert [test["provider"] for test in data["data"]] == ["alpha"]
    line = _failed(gw.cli("models", "test-connection", "nope"))
    assert "No provider with id 'nope'" in line
    assert "(param: query.provider)" in line


def test_decisions_list_and_show(gw: AdminGateway) -> None:
    out = _ok(gw.cli("decisions", "list"))
    assert "Routing decisions" in out
    assert "alice / acme" in out
    assert "dave / globex" in out
    assert "gpt-4o → gpt-4o-mini" in out
    data = json.loads(_ok(gw.cli("decisions", "list", "--json", "--principal", "dave")))
    assert data == gw.get("/decisions", params={"principal": "dave", "limit": 20}).json()
    [row] = data["data"]
    out = _ok(gw.cli("decisions", "show", row["id"]))
    assert f"Decision {row['id']}" in out
    assert "Outcome:       ok;" in out
    assert "Budget evaluations" in out
    shown = json.loads(_ok(gw.cli("decisions", "show", row["id"], "--json")))
    assert shown == gw.get(f"/decisions/{row['id']}").json()
    paged = _ok(gw.cli("decisions", "list", "--limit", "1"))
    assert "More: --cursor " in paged
    assert "No decision with id 'nope'" in _failed(gw.cli("decisions", "show", "nope"))


def test_scoped_key_through_the_cli(gw: AdminGateway) -> None:
    alice = gw.secrets["alice"]
    out = _ok(gw.cli("decisions", "list", token=alice))
    assert "alice / acme" in out
    assert "globex" not in out
    line = _failed(gw.cli("decisions", "list", "--project", "globex", token=alice))
    assert line.startswith("not allowed: ")
    assert "(param: query.project)" in line
    assert _failed(gw.cli("models", "test-connection", token=alice)).startswith("not allowed: ")


def test_validation_error_is_one_line_with_param(gw: AdminGateway) -> None:
    line = _failed(gw.cli("decisions", "list", "--since", "last tuesday"))
    assert line.startswith("error: query.since:")
    assert line.endswith("(param: query.since) [HTTP 422]")
    line = _failed(gw.cli("decisions", "list", "--action", "explode"))
    assert "(param: query.action)" in line


def test_auth_refused(gw: AdminGateway) -> None:
    line = _failed(gw.cli("models", "status", token="wrong"))
    assert line.startswith(f"authentication refused by spendgate at {gw.url}")
    line = _failed(gw.cli("models", "status", token=None))
    assert "pass --token or set SPENDGATE_ADMIN_TOKEN" in line


def test_unreachable_daemon() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    done = subprocess.run(
        [SPENDGATE, "--url", url, "--token", "t", "models", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    line = _failed(done)
    assert line.startswith(f"cannot reach spendgate at {url}: ")
    assert line.endswith("is `spendgate serve` or `spendgate demo` running?")


def test_global_options_from_environment(gw: AdminGateway) -> None:
    env = {**os.environ, "SPENDGATE_URL": gw.url, "SPENDGATE_ADMIN_TOKEN": gw.token}
    done = subprocess.run(
        [SPENDGATE, "models", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert json.loads(_ok(done))["default_model"] == "gpt-4o"


def test_shell_completion_is_available() -> None:
    """As a user runs it, from their shell: the script is for the shell it runs in (whatever
    started pytest: make's /bin/sh has no completion)."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash to run the completion from")
    done = subprocess.run(
        # The trailing exit keeps bash there (it would exec a lone command in its place).
        [bash, "-c", f"{shlex.quote(SPENDGATE)} --show-completion; exit $?"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "_spendgate_completion" in done.stdout
    assert "complete " in done.stdout
