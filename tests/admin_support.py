"""A real gateway for admin API and CLI tests: uvicorn on a loopback port, a SQLite journal in a
temp directory, the mock upstream as provider, the admin token set.

Use it from a module-scoped fixture::

    from admin_support import AdminGateway, admin_gateway

    @pytest.fixture(scope="module")
    def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
        with admin_gateway(tmp_path_factory.mktemp("admin")) as running:
            yield running

    def test_something(gw: AdminGateway) -> None:
        reply = gw.get("/budgets")                       # admin token by default
        assert gw.get("/budgets", token=None).status_code == 401
        assert gw.get("/budgets", token=gw.secrets["alice"]).status_code == 200
        done = gw.cli("budgets", "list", "--json")       # the real `spendgate` command
        gw.chat("alice", "Say hello")                    # traffic through the proxy

``admin_gateway(dir, config=..., env=...)`` takes a YAML config in which ``{mock}`` is the mock
upstream's root URL (default ``CONFIG``) and extra environment variables (merged over ``ENV``).
Keys of the default config (secret in ``gw.secrets[id]``): ``ops`` (admin + approver),
``approver`` (approver only, project acme), ``alice`` and ``bob`` (project acme), ``dave``
(project globex), ``solo`` (principal solo, no project), ``lone`` (no principal, no project).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gateway_support import Served, serve_config
from spendgate.mock_upstream.runner import MockUpstreamThread

__all__ = ["ADMIN_TOKEN", "CONFIG", "ENV", "SPENDGATE", "AdminGateway", "admin_gateway"]

ADMIN_TOKEN = "sg-admin-token-for-tests"

CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
  - {{id: beta, kind: anthropic, base_url: "{mock}", api_key_env: BETA_KEY}}
models:
  - {{id: gpt-4o-mini, provider: alpha, capabilities: [json, vision, tools], cost_tier: low,
     latency_tier: low, context_window: 128000, max_output_tokens: 16384}}
  - {{id: gpt-4o, provider: alpha, capabilities: [json, vision, tools], cost_tier: medium,
     latency_tier: medium, context_window: 128000, max_output_tokens: 16384}}
  - {{id: claude-opus-4, provider: beta, capabilities: [vision, tools], cost_tier: high,
     latency_tier: high, context_window: 200000, max_output_tokens: 32000}}
routing: {{default_model: gpt-4o, mode: enforced, smart_routing: true, failover: true}}
keys:
  - {{id: ops, key_env: OPS_KEY, principal: ops, project: platform,
     permissions: [admin, approver]}}
  - {{id: approver, key_env: APPROVER_KEY, principal: carol, project: acme,
     permissions: [approver]}}
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
  - {{id: bob, key_env: BOB_KEY, principal: bob, project: acme}}
  - {{id: dave, key_env: DAVE_KEY, principal: dave, project: globex}}
  - {{id: solo, key_env: SOLO_KEY, principal: solo}}
  - {{id: lone, key_env: LONE_KEY}}
budgets:
  - {{id: principal-daily-usd, scope: {{kind: principal, id: "*"}}, metric: usd,
     interval: daily, soft_limit: 1, hard_limit: 5, soft_action: degrade,
     degrade_to: gpt-4o-mini}}
  - {{id: acme-monthly-tokens, scope: {{kind: project, id: acme}}, metric: tokens,
     interval: monthly, hard_limit: 2000000, hard_action: require_approval}}
"""

ENV: dict[str, str] = {
    "ALPHA_KEY": "sk-alpha-upstream-secret",
    "BETA_KEY": "sk-beta-upstream-secret",
    "OPS_KEY": "sg-ops",
    "APPROVER_KEY": "sg-approver",
    "ALICE_KEY": "sg-alice",
    "BOB_KEY": "sg-bob",
    "DAVE_KEY": "sg-dave",
    "SOLO_KEY": "sg-solo",
    "LONE_KEY": "sg-lone",
    "SPENDGATE_ADMIN_TOKEN": ADMIN_TOKEN,
}

# The installed console script of this virtualenv.
SPENDGATE = str(Path(sys.executable).with_name("spendgate"))

_DEFAULT = object()


@dataclass
class AdminGateway:
    """A running gateway: ``url`` is its root, ``api`` its admin API root (``url/api/v1``)."""

    url: str
    served: Served
    mock: MockUpstreamThread
    env: dict[str, str]
    secrets: dict[str, str] = field(default_factory=dict)  # key id → secret
    token: str = ADMIN_TOKEN

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    def request(
        self, method: str, path: str, *, token: object = _DEFAULT, **options: Any
    ) -> httpx.Response:
        """``path`` relative to ``/api/v1``; ``token`` defaults to the admin token (None: no
        Authorization header)."""
        secret = self.token if token is _DEFAULT else token
        headers = dict(options.pop("headers", {}))
        if isinstance(secret, str):
            headers["authorization"] = f"Bearer {secret}"
        return httpx.request(method, self.api + path, headers=headers, timeout=30, **options)

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.request("GET", path, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return self.request("POST", path, **options)

    def put(self, path: str, **options: Any) -> httpx.Response:
        return self.request("PUT", path, **options)

    def delete(self, path: str, **options: Any) -> httpx.Response:
        return self.request("DELETE", path, **options)

    def chat(
        self, key: str, text: str = "Say hello.", model: str = "gpt-4o", **body: Any
    ) -> httpx.Response:
        """One OpenAI chat request through the proxy with key ``key`` (an id of ``secrets``, or
        a secret itself); ``headers=`` adds request headers (``x-spendgate-agent-id`` ...)."""
        secret = self.secrets.get(key, key)
        headers = {"authorization": f"Bearer {secret}", **body.pop("headers", {})}
        payload = {"model": model, "messages": [{"role": "user", "content": text}], **body}
        return httpx.post(
            self.url + "/v1/chat/completions", json=payload, headers=headers, timeout=30
        )

    def flush(self) -> None:
        """Wait until everything journaled so far is readable (decisions are written off the
        request path)."""
        assert self.served.journal is not None
        assert self.served.journal.flush(10)

    def cli(
        self,
        *args: str,
        token: object = _DEFAULT,
        url: str | None = None,
        columns: int = 200,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real ``spendgate`` command against this gateway (``--url``/``--token``
        given as global options; ``token=None`` gives none) in a terminal ``columns`` wide,
        with ``env`` added to its environment."""
        secret = self.token if token is _DEFAULT else token
        command = [SPENDGATE, "--url", url or self.url]
        if isinstance(secret, str):
            command += ["--token", secret]
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SPENDGATE_")}
        environ.update({"COLUMNS": str(columns), "NO_COLOR": "1", "TERM": "dumb", **(env or {})})
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, env=environ, timeout=60, check=False
        )


@contextmanager
def admin_gateway(
    directory: Path,
    config: str = CONFIG,
    env: Mapping[str, str] | None = None,
    *,
    mock_latency_ms: int = 0,
) -> Iterator[AdminGateway]:
    """Start the mock upstream and a gateway on ``config`` (``{mock}`` = mock root URL) with a
    SQLite journal in ``directory``; stops both on exit."""
    environ = {**ENV, **(env or {})}
    with MockUpstreamThread(latency_ms=mock_latency_ms) as mock:
        text = config.format(mock=mock.base_url)
        with serve_config(text, environ, database=directory / "journal.db") as served:
            secrets = _secrets(text, environ)
            token = environ.get("SPENDGATE_ADMIN_TOKEN", "")
            yield AdminGateway(served.url, served, mock, environ, secrets, token)


def _secrets(config_text: str, environ: Mapping[str, str]) -> dict[str, str]:
    from spendgate.config import parse_config

    return {
        key.id: environ[key.key_env]
        for key in parse_config(config_text, "test.yaml").api_keys()
        if key.key_env and environ.get(key.key_env)
    }
