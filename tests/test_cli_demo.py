"""``spendgate demo``: the real console script, mock upstream and gateway, end to end, as a
user reads it: piped (never wrapped, whatever COLUMNS says), in an 80-column terminal, and
with a port already taken."""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from admin_support import SPENDGATE
from cli_support import spendgate_cli
from serve_support import free_port

ROUTES = {
    "simple question": "gpt-4o → gpt-4o-mini",
    "complex reasoning": "gpt-4o → claude-opus-4",
    "Anthropic Messages API": "claude-opus-4 → gpt-4o-mini",
}
BLOCKED = "worst case over the daily $5 budget"
# A served row ends with its tokens (in / out) and its cost, on the row's own line.
USAGE_AND_COST = re.compile(r"[\d,]+ / [\d,]+ +0\.\d{6}$")


def _ports() -> list[str]:
    return ["--port", str(free_port()), "--mock-port", str(free_port())]


@pytest.mark.parametrize("columns", ["80", "120"])
def test_demo_summary_and_commands_are_whole_lines_when_piped(tmp_path: Path, columns: str) -> None:
    result = spendgate_cli(
        "demo", "--no-serve", *_ports(), cwd=tmp_path, timeout=120, COLUMNS=columns
    )
    assert result.returncode == 0, result.stderr
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert "6 requests · cost $0.0" in result.stdout
    assert "5 rerouted · 1 blocked" in result.stdout
    for label, route in ROUTES.items():
        row = next(line for line in lines if line.startswith(label))
        assert route in row
        assert USAGE_AND_COST.search(row), row
    assert any(line.startswith(BLOCKED) and "block (429)" in line for line in lines)
    reason = next(line for line in lines if line.startswith(f"{BLOCKED} (429): "))
    assert "would exceed the hard limit 5" in reason
    assert "× 3 choices" in reason  # the worst case counts every choice asked for

    # The approval flow: blocked, approved once (the command an approver would type), passed.
    blocked = next(line for line in lines if line.startswith("  blocked: "))
    approval_id = blocked.rsplit(" ", 1)[-1]
    assert blocked == f"  blocked: 403 approval_required, approval request {approval_id}"
    assert approval_id.startswith("apr_")
    assert any(line.endswith(f"approvals approve {approval_id} --scope once") for line in lines)
    retried = next(line for line in lines if line.startswith("  retried: "))
    assert retried.startswith("  retried: 200, decision ")
    assert retried.endswith("(budget_override_applied)")

    # The alerts that traffic raised: the agent's budget refused a request.
    alerts = lines.index("Alerts raised by this traffic (delivered to webhooks when configured):")
    assert (
        "  critical: Budget batch-bot-daily-tokens for project:acme/batch-bot refused a request"
        " (worst case over limit)" in (lines[alerts + 1 :])
    )

    # The copy-pasteable commands are whole lines: a curl with a JSON body that parses, and
    # the CLI commands with their arguments.
    (curl,) = (shlex.split(line) for line in lines if line.startswith("  curl "))
    assert curl[-2] == "-d"
    assert json.loads(curl[-1])["model"] == "gpt-4o"
    assert any(word.startswith("authorization: Bearer sg-demo-") for word in curl)
    explain = 'models explain "Prove that there are infinitely many primes" --project acme'
    assert any(explain in line for line in lines)
    assert (tmp_path / "spendgate-demo.db").exists()  # decisions were journaled


@contextmanager
def _serving_demo(tmp_path: Path) -> Iterator[list[str]]:
    """``spendgate demo`` (serving) with stdout piped; yields its lines once it serves."""
    process = subprocess.Popen(
        [SPENDGATE, "demo", *_ports()],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("SPENDGATE_")}
        | {"COLUMNS": "80", "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Serving until Ctrl-C."):
                break
        assert lines, "the demo printed nothing"
        assert lines[-1].startswith("Serving"), "\n".join(lines)
        yield lines
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
        process.stdout.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")
def test_demo_printed_commands_work_as_pasted(tmp_path: Path) -> None:
    """The printed curl and CLI lines, pasted as they are, reach the running demo."""
    with _serving_demo(tmp_path) as lines:
        (curl,) = (shlex.split(line) for line in lines if line.startswith("  curl "))
        answered = subprocess.run(
            [*curl, "--silent", "--fail"], capture_output=True, text=True, timeout=30
        )
        assert answered.returncode == 0, answered.stderr
        assert json.loads(answered.stdout)["choices"][0]["message"]["content"]

        (export,) = (line.split()[1] for line in lines if line.startswith("  export "))
        name, token = export.split("=", 1)
        status = next(shlex.split(line) for line in lines if line.endswith(" models status"))
        assert status[0] == "spendgate"
        models = spendgate_cli(*status[1:], **{name: token})
        assert models.returncode == 0, models.stderr
        assert "mode: enforced" in models.stdout  # the demo's routing mode, read over the API

        # The console the demo names takes the admin token it printed.
        (console,) = (line.split()[1] for line in lines if line.startswith("Console "))
        client = httpx.Client(timeout=30)
        form = client.get(console + "/login").text
        csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        signed = client.post(console + "/login", data={"csrf": csrf, "credential": token})
        assert signed.status_code == 303
        assert 'data-metric="requests"' in client.get(console + "/").text


def test_demo_table_fits_an_80_column_terminal(tmp_path: Path) -> None:
    """In a terminal the table takes its width, and only the request's label wraps: no model,
    action or number is ever split."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [SPENDGATE, "demo", "--no-serve", *_ports()],
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "80", "NO_COLOR": "1", "TERM": "xterm"},
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the demo exited
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert process.wait(60) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode()).replace("\r", "")
    lines = text.splitlines()
    table = lines[lines.index("spendgate demo: what the gateway decided") + 1 :]
    table = table[: next(i for i, line in enumerate(table) if line.startswith("6 requests"))]
    assert all(len(line.rstrip()) <= 80 for line in table), table
    for route in ROUTES.values():
        row = next(line for line in table if route in line)
        assert USAGE_AND_COST.search(row.rstrip()), row
    assert any("claude-opus-4 → —" in line and "block (429)" in line for line in table)


@pytest.mark.parametrize(
    ("option", "what"), [("--mock-port", "the mock upstream"), ("--port", "the gateway")]
)
def test_demo_port_conflict_names_both_port_options(tmp_path: Path, option: str, what: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = _ports()
        args[args.index(option) + 1] = str(port)
        result = spendgate_cli("demo", "--no-serve", *args, cwd=tmp_path, COLUMNS="80")
    assert result.returncode == 2
    message = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stderr).split())
    assert f"Invalid value for '{option}': port {port} ({what}) is in use" in message
    assert "--port for the gateway, --mock-port for the mock upstream" in message
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "spendgate-demo.db").exists()  # refused before starting anything
