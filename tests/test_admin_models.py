"""``/api/v1/models/*`` over real HTTP: status (providers, credentials named but never shown,
health and circuit), the model list with tiers and prices, connection tests and discovery
against the mock upstream, a provider that refuses its credential (and echoes it back), one
that is down, and one whose credential is unset."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from admin_support import CONFIG, AdminGateway, admin_gateway
from spendgate.domain.health import Outcome

REFUSED_SECRET = "sk-refused-secret-0123456789"


class _Refuser(BaseHTTPRequestHandler):
    """A provider that refuses every credential and, like some do, quotes it in the error."""

    def do_GET(self) -> None:
        presented = self.headers.get("authorization", "").removeprefix("Bearer ")
        body = json.dumps(
            {"error": {"message": f"Incorrect API key provided: {presented}.", "type": "auth"}}
        ).encode()
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    refuser = ThreadingHTTPServer(("127.0.0.1", 0), _Refuser)
    threading.Thread(target=refuser.serve_forever, daemon=True).start()
    extra = f"""
  - {{{{id: refuser, kind: openai, base_url: "http://127.0.0.1:{refuser.server_port}/v1",
     api_key_env: REFUSER_KEY}}}}
  - {{{{id: down, kind: openai,
     base_url: "http://ops:hunter2@127.0.0.1:{_closed_port()}/v1?api-key=zzz-secret",
     api_key_env: DOWN_KEY, timeout_s: 2}}}}
  - {{{{id: nokey, kind: anthropic, base_url: "{{mock}}", api_key_env: NOKEY_KEY}}}}
models:"""
    config = CONFIG.replace("\nmodels:", extra, 1)
    env = {"REFUSER_KEY": REFUSED_SECRET, "DOWN_KEY": "sk-down-secret-42"}
    try:
        with admin_gateway(tmp_path_factory.mktemp("models"), config, env) as running:
            yield running
    finally:
        refuser.shutdown()


def _by_id(rows: list[dict[str, object]], key: str = "id") -> dict[object, dict[str, object]]:
    return {row[key]: row for row in rows}


def test_status_reports_providers_without_secrets(gw: AdminGateway) -> None:
    response = gw.get("/models/status")
    assert response.status_code == 200
    data = response.json()
    assert data["default_model"] == "gpt-4o"
    assert data["routing_mode"] == "enforced"
    assert data["smart_routing"] is True
    assert data["failover"] is True
    providers = _by_id(data["providers"])
    assert set(providers) == {"alpha", "beta", "refuser", "down", "nokey"}
    alpha = providers["alpha"]
    assert alpha["kind"] == "openai"
    assert alpha["credential_env"] == "ALPHA_KEY"
    assert alpha["credential_present"] is True
    assert alpha["models"] == ["gpt-4o", "gpt-4o-mini"]
    assert alpha["health"]["state"] == "healthy"  # type: ignore[index]
    assert alpha["health"]["circuit"] == "closed"  # type: ignore[index]
    nokey = providers["nokey"]
    assert nokey["credential_present"] is False
    assert "NOKEY_KEY" in str(nokey["problem"])
    # Credentials hidden in a URL are not shown either.
    assert providers["down"]["base_url"].startswith("http://127.0.0.1:")  # type: ignore[union-attr]
    text = response.text
    for secret in ("sk-alpha-upstream-secret", REFUSED_SECRET, "hunter2", "zzz-secret"):
        assert secret not in text


def test_status_shows_an_open_circuit_with_reason_and_until(gw: AdminGateway) -> None:
    # Trip the circuit of a provider no request uses (as consecutive 500s would).
    board = gw.served.gateway.upstreams.health.get("refuser")
    now = time.monotonic()
    for _ in range(board.config.failure_threshold):
        board.record(now, Outcome.ERROR, 0.01, detail="HTTP 500")
    health = _by_id(gw.get("/models/status").json()["providers"])["refuser"]["health"]
    assert health["state"] == "unhealthy"  # type: ignore[index]
    assert health["circuit"] == "open"  # type: ignore[index]
    assert health["reason_code"] == "consecutive_failures"  # type: ignore[index]
    assert "HTTP 500" in health["reason"]  # type: ignore[index]
    assert health["retry_at"] is not None  # type: ignore[index]
    assert health["retry_in_s"] > 0  # type: ignore[index]


def test_models_list_has_tiers_capabilities_and_prices(gw: AdminGateway) -> None:
    response = gw.get("/models")
    assert response.status_code == 200
    models = _by_id(response.json()["data"])
    assert set(models) == {"gpt-4o", "gpt-4o-mini", "claude-opus-4"}
    mini = models["gpt-4o-mini"]
    assert mini["provider"] == "alpha"
    assert mini["capabilities"] == ["json", "tools", "vision"]
    assert mini["context_window"] == 128000
    assert mini["max_output_tokens"] == 16384
    assert mini["cost_tier"] == "low"
    assert mini["latency_tier"] == "low"
    assert mini["unpriced"] is False
    price = mini["price"]
    assert price["input_per_mtok"] == "0.15"  # type: ignore[index]
    assert price["output_per_mtok"] == "0.6"  # type: ignore[index]
    assert price["source"] == "catalog"  # type: ignore[index]
    assert price["precision"] == "exact"  # type: ignore[index]
    assert mini["discovered"] is None
    assert response.json()["discovered_at"] is None


def test_models_list_of_a_key_with_an_allow_list(tmp_path_factory: pytest.TempPathFactory) -> None:
    config = CONFIG.replace(
        "{{id: bob, key_env: BOB_KEY, principal: bob, project: acme}}",
        "{{id: bob, key_env: BOB_KEY, principal: bob, project: acme, models: [gpt-4o-mini]}}",
    )
    with admin_gateway(tmp_path_factory.mktemp("allow"), config) as running:
        listed = running.get("/models", token=running.secrets["bob"]).json()["data"]
        assert [model["id"] for model in listed] == ["gpt-4o-mini"]


def test_connection_to_one_provider(gw: AdminGateway) -> None:
    response = gw.post("/models/test-connection", params={"provider": "alpha"})
    assert response.status_code == 200
    data = response.json()
    assert data["ok"] is True
    [alpha] = data["data"]
    assert alpha["provider"] == "alpha"
    assert alpha["ok"] is True
    assert alpha["status_code"] == 200
    assert alpha["credential_accepted"] is True
    assert alpha["latency_ms"] >= 0
    assert alpha["model_count"] == len(alpha["models"]) > 0
    assert {"id": "gpt-4o", "display_name": None, "owned_by": "spendgate-mock",
            "configured": True} in alpha["models"]  # fmt: skip


def test_connection_to_every_provider(gw: AdminGateway) -> None:
    response = gw.post("/models/test-connection")
    assert response.status_code == 200
    data = response.json()
    assert data["ok"] is False
    tests = _by_id(data["data"], "provider")
    assert tests["alpha"]["ok"] is True
    beta = tests["beta"]  # Anthropic: /v1/models with x-api-key and anthropic-version
    assert beta["ok"] is True
    assert beta["url"].endswith("/v1/models")  # type: ignore[union-attr]
    assert all(model["id"].startswith("claude") for model in beta["models"])  # type: ignore[attr-defined,index]
    refused = tests["refuser"]
    assert refused["ok"] is False
    assert refused["status_code"] == 401
    assert refused["credential_accepted"] is False
    assert "Incorrect API key" in str(refused["error"])
    down = tests["down"]
    assert down["ok"] is False
    assert down["status_code"] is None
    assert down["credential_accepted"] is None
    assert down["error"]
    nokey = tests["nokey"]
    assert nokey["ok"] is False
    assert nokey["credential_accepted"] is False
    assert "NOKEY_KEY" in str(nokey["error"])
    for secret in (REFUSED_SECRET, "sk-down-secret-42", "hunter2", "zzz-secret"):
        assert secret not in response.text


def test_connection_unknown_provider_is_404(gw: AdminGateway) -> None:
    response = gw.post("/models/test-connection", params={"provider": "nope"})
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "query.provider"


def test_discover_then_list_merges_discovered(gw: AdminGateway) -> None:
    response = gw.post("/models/discover", params={"provider": "alpha"})
    assert response.status_code == 200
    listed = gw.get("/models", params={"discovered": "true"}).json()
    assert listed["discovered_at"] is not None
    models = {(row["provider"], row["id"]): row for row in listed["data"]}
    assert models["alpha", "gpt-4o"]["discovered"] is True
    assert models["alpha", "gpt-4o"]["configured"] is True
    # Its provider (beta) was not discovered: unknown, not "missing".
    assert models["beta", "claude-opus-4"]["discovered"] is None
    # Listed by the mock's OpenAI endpoint, not configured there.
    for extra in ("gpt-4.1-mini", "claude-opus-4"):
        assert models["alpha", extra]["configured"] is False
        assert models["alpha", extra]["discovered"] is True
        assert models["alpha", extra]["price"] is None
    # Without the flag, the list is the configured models only.
    assert "gpt-4.1-mini" not in _by_id(gw.get("/models").json()["data"])
