"""The proxy path imports only what it needs: ``spendgate serve`` on a migrated database
proxies a chat completion without having imported the admin API (FastAPI, Starlette), the
console (Jinja2), Alembic, genai-prices (the catalog comes from an index), the admin's
httpx, or the CLI's other commands and Rich; the first admin and console requests import
them and answer. Checked in a fresh interpreter running the real ``spendgate serve`` command
(the test process imports all of them)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gateway_support import ONE_PROVIDER, ONE_PROVIDER_ENV
from spendgate import catalog
from spendgate.mock_upstream.runner import MockUpstreamThread
from spendgate.store.migrate import migrate

# Module prefixes the proxy path must not load.
HEAVY = (
    "fastapi",
    "starlette",
    "jinja2",
    "alembic",
    "httpx",
    "genai_prices",
    "spendgate.admin.app",
    "spendgate.admin.discovery",
    "spendgate.console",
    "rich",  # the CLI's printing: serve prints no table
)

# Serves in the main thread (as the command does); a thread drives the requests and reports.
SCRIPT = """
import json, os, sys, threading, time, urllib.error, urllib.request

HEAVY = {heavy!r}
URL = "http://127.0.0.1:{port}"


def call(method, path, body=None, **headers):
    request = urllib.request.Request(URL + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


def loaded():
    return sorted({{m for m in sys.modules for p in HEAVY if m == p or m.startswith(p + ".")}})


def commands():
    return sorted(m for m in sys.modules if m.startswith("spendgate.cli.") and m.endswith("_cmd"))


def drive():
    try:
        for _ in range(1000):
            try:
                if call("GET", "/healthz") == 200:
                    break
            except OSError:
                time.sleep(0.01)
        body = json.dumps({{"model": "gpt-4o-mini",
                            "messages": [{{"role": "user", "content": "hi"}}]}}).encode()
        found = {{"proxied": call("POST", "/v1/chat/completions", body,
                                  authorization="Bearer sg-alice",
                                  **{{"content-type": "application/json"}}),
                  "after_proxy": loaded(), "commands": commands()}}
        found["admin"] = call("GET", "/api/v1/budgets")
        found["console"] = call("GET", "/console/")
        found["after_admin"] = loaded()
        print(json.dumps(found), flush=True)
    finally:
        os._exit(0)


threading.Thread(target=drive, daemon=True).start()
sys.argv = ["spendgate", "serve", "--config", {config!r}, "--port", "{port}",
            "--log-level", "warning"]
from spendgate.cli import main
main()
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_proxy_path_imports_no_admin_console_or_alembic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = f"sqlite:///{tmp_path / 'journal.db'}"
    migrate(database)  # an up-to-date database: Alembic is needed only to upgrade one
    # Not a first start either: a genai-prices newer than the shipped index is mapped (so
    # imported) once, by the first start, which caches the index for the next ones.
    monkeypatch.setenv("SPENDGATE_CACHE_DIR", str(tmp_path / "cache"))
    catalog._chosen.__wrapped__()
    with MockUpstreamThread(latency_ms=0) as mock:
        config = tmp_path / "spendgate.yaml"
        config.write_text(f"database_url: {database}\n" + ONE_PROVIDER.format(mock=mock.base_url))
        script = SCRIPT.format(heavy=HEAVY, port=_free_port(), config=str(config))
        run = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**ONE_PROVIDER_ENV, "PATH": "", "SPENDGATE_CACHE_DIR": str(tmp_path / "cache")},
        )
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["proxied"] == 200
    assert found["after_proxy"] == []
    assert found["commands"] == ["spendgate.cli.serve_cmd"]  # no admin command's module
    # The first admin and console requests build their apps on demand.
    assert found["admin"] == 401
    assert found["console"] in {200, 303}
    assert {"fastapi", "jinja2", "spendgate.admin.app", "spendgate.console.app"} <= set(
        found["after_admin"]
    )
