"""The README's "Run the gateway" section, run for real: its config, its environment, its
``config check`` and ``serve`` lines, and the request it ends with (the mock upstream stands
in for the provider, as the section says; ports are swapped for free ones)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from cli_support import spendgate_cli
from serve_support import serve_process
from spendgate.mock_upstream.runner import MockUpstreamThread

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _command(lines: list[str], name: str) -> list[str]:
    """The arguments of the ``spendgate NAME`` line (comment and trailing ``&`` dropped)."""
    for line in lines:
        words = shlex.split(line, comments=True)
        if words[:2] == ["spendgate", name]:
            return [word for word in words[2:] if word != "&"]
    raise AssertionError(f"no `spendgate {name}` line")


def test_run_the_gateway_section_works_as_written(tmp_path: Path) -> None:
    blocks = _BLOCK.findall(_section("Run the gateway"))
    languages = [language for language, _ in blocks]
    assert languages == ["yaml", "sh", "python"]  # config, commands, and last the request
    config, commands, request = (body for _, body in blocks)
    lines = commands.splitlines()
    env = dict(
        line.removeprefix("export ").split("#")[0].strip().split("=", 1)
        for line in lines
        if line.startswith("export ")
    )
    # Every variable the config names is exported, and so is the admin token.
    for variable in re.findall(r"\bkey_env: (\w+)|api_key_env: (\w+)", config):
        assert "".join(variable) in env
    assert "SPENDGATE_ADMIN_TOKEN" in env

    with MockUpstreamThread(latency_ms=0) as mock:
        assert "127.0.0.1:9100" in config  # the mock's port, as `spendgate mock-upstream` uses
        config = config.replace("127.0.0.1:9100", f"127.0.0.1:{mock.port}")
        (tmp_path / "spendgate.yaml").write_text(config)

        check = _command(lines, "config")
        assert check[0] == "check"
        checked = spendgate_cli("config", *check, cwd=tmp_path, **env)
        assert checked.returncode == 0, checked.stderr
        assert "No warnings." in checked.stdout

        # serve_process serves tmp_path/spendgate.yaml on a free port: the README's own
        # --config and --port, with whatever else its line passes.
        serve = _command(lines, "serve")
        assert serve[:4] == ["--config", "spendgate.yaml", "--port", "8787"]
        with serve_process(tmp_path, config, env, *serve[4:]) as served:
            assert "http://127.0.0.1:8787/v1" in request
            answered = subprocess.run(
                [sys.executable, "-c", request.replace("http://127.0.0.1:8787", served.url)],
                env={"ALICE_KEY": env["ALICE_KEY"], "PATH": "/usr/bin:/bin"},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.strip()  # the mock's answer, printed
    assert mock.requests_by_path["/v1/chat/completions"] == 1


def test_readme_says_how_spendgate_gets_on_path_before_using_it() -> None:
    text = README.read_text(encoding="utf-8")
    activation = text.index("source .venv/bin/activate")
    # A command: `spendgate …` in a code span, or a line of a shell block.
    spans = [m.start() for m in re.finditer(r"`spendgate [a-z]", text)]
    for block in _BLOCK.finditer(text):
        if block.group(1) == "sh":
            body = block.start(2)
            spans += [body + m.start() for m in re.finditer(r"^spendgate ", block[2], re.M)]
    first = min(spans)
    assert activation < first, text[first - 200 : first + 40]
