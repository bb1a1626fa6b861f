"""The admin API platform over real HTTP: authentication (admin token, API keys, x-api-key),
the error envelope for every kind of error, OpenAPI, and how the gateway mounts the app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from admin_support import AdminGateway, admin_gateway
from gateway_support import serve_config
from spendgate.admin.auth import Viewer
from spendgate.admin.errors import AdminError
from spendgate.domain.keys import ApiKey


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("platform")) as running:
        yield running


def _error(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert isinstance(error["message"], str)
    assert error["message"]
    return error  # type: ignore[no-any-return]


# -- authentication ----------------------------------------------------------------------------


def test_missing_credential_is_401(gw: AdminGateway) -> None:
    response = gw.get("/decisions", token=None)
    assert response.status_code == 401
    error = _error(response)
    assert error["code"] == "invalid_api_key"
    assert error["type"] == "authentication_error"


def test_wrong_token_is_401(gw: AdminGateway) -> None:
    assert gw.get("/models/status", token="not-the-token").status_code == 401
    assert gw.get("/models/status", token=gw.token + "x").status_code == 401
    # Not a bearer scheme: nothing was presented.
    response = gw.get("/models/status", token=None, headers={"authorization": gw.token})
    assert response.status_code == 401


def test_admin_token_and_api_keys_authenticate(gw: AdminGateway) -> None:
    assert gw.get("/models/status").status_code == 200
    assert gw.get("/models/status", token=gw.secrets["alice"]).status_code == 200
    response = gw.get("/models/status", token=None, headers={"x-api-key": gw.secrets["ops"]})
    assert response.status_code == 200


def test_writes_need_admin(gw: AdminGateway) -> None:
    for secret in (gw.secrets["alice"], gw.secrets["approver"]):
        response = gw.post("/models/test-connection", token=secret)
        assert response.status_code == 403
        assert _error(response)["code"] == "forbidden"
        assert gw.post("/models/discover", token=secret).status_code == 403
    # A key with the admin permission is an admin.
    assert gw.post("/models/test-connection", token=gw.secrets["ops"]).status_code == 200


def test_admin_api_off_without_token_configured(tmp_path: Path) -> None:
    """No SPENDGATE_ADMIN_TOKEN: only keys with the admin permission administer; an empty
    bearer never matches anything."""
    with admin_gateway(tmp_path, env={"SPENDGATE_ADMIN_TOKEN": ""}) as running:
        assert running.get("/models/status", token=None).status_code == 401
        empty = {"authorization": "Bearer", "x-api-key": ""}
        assert running.get("/models/status", token=None, headers=empty).status_code == 401
        assert running.get("/models/status", token="anything").status_code == 401
        assert running.post("/models/discover", token=running.secrets["ops"]).status_code == 200


# -- errors --------------------------------------------------------------------------------------


def test_validation_error_names_the_field(gw: AdminGateway) -> None:
    response = gw.get("/decisions", params={"limit": "many"})
    assert response.status_code == 422
    error = _error(response)
    assert error["code"] == "invalid_request"
    assert error["param"] == "query.limit"
    response = gw.post("/explain", json={"protocol": "openai"})
    assert response.status_code == 422
    assert _error(response)["param"] == "body.request"
    response = gw.post(
        "/explain", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert _error(response)["code"] == "invalid_request"


def test_unknown_path_and_method(gw: AdminGateway) -> None:
    response = gw.get("/no-such-thing")
    assert response.status_code == 404
    assert _error(response)["code"] == "not_found"
    response = gw.delete("/models/status")
    assert response.status_code == 405
    assert _error(response)["code"] == "method_not_allowed"


def test_openapi_document(gw: AdminGateway) -> None:
    response = gw.get("/openapi.json", token=None)
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "spendgate admin API"
    error_schema = document["components"]["schemas"]["ErrorEnvelope"]
    assert error_schema["properties"]["error"]
    status = document["paths"]["/api/v1/models/status"]["get"]["responses"]
    assert status["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ModelsStatus")
    assert status["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorEnvelope")
    assert gw.get("/docs", token=None).status_code == 200


# -- mounting ------------------------------------------------------------------------------------


def test_proxy_routes_still_served_alongside(gw: AdminGateway) -> None:
    assert gw.chat("alice").status_code == 200
    assert httpx.get(gw.url + "/healthz").json()["status"] == "ok"
    models = httpx.get(gw.url + "/v1/models", headers={"authorization": "Bearer sg-alice"})
    assert models.status_code == 200


def test_admin_api_and_console_built_lazily(tmp_path: Path) -> None:
    with admin_gateway(tmp_path) as running:
        mounts = {mount.prefix: mount for mount in running.served.gateway.mounts}
        assert not mounts["/api"].built  # the proxy alone never builds them
        assert running.chat("alice").status_code == 200
        assert not mounts["/api"].built
        assert running.get("/models/status").status_code == 200
        assert mounts["/api"].built
        assert not mounts["/console"].built
        assert httpx.get(running.url + "/console/login").status_code == 200
        assert mounts["/console"].built


def test_gateway_without_journal_answers_503(tmp_path: Path) -> None:
    config = """
providers: [{id: m, kind: mock, base_url: "http://127.0.0.1:9/v1"}]
models: [{id: gpt-4o, provider: m}]
"""
    with serve_config(config, {"SPENDGATE_ADMIN_TOKEN": "t"}) as served:
        for path in ("/api/v1/models/status", "/console/"):
            response = httpx.get(served.url + path)
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "admin_unavailable"


# -- viewers (the scoping rule every router uses) ------------------------------------------------


def test_viewer_scope_restriction() -> None:
    admin = Viewer("admin-token", None, is_admin=True, is_approver=True)
    project = Viewer("k1", ApiKey("k1", principal="alice", project="acme"), False, False)
    principal = Viewer("k2", ApiKey("k2", principal="solo"), False, False)
    bare = Viewer("k3", ApiKey("k3"), False, False)
    assert admin.scope_restriction() == {}
    assert project.scope_restriction() == {"project": "acme"}
    assert principal.scope_restriction() == {"principal": "solo"}
    assert bare.scope_restriction() == {"api_key": "k3"}


def test_viewer_confine_narrows_or_refuses() -> None:
    viewer = Viewer("k1", ApiKey("k1", principal="alice", project="acme"), False, False)
    assert viewer.confine({"project": None, "principal": "bob"}) == {
        "project": "acme",
        "principal": "bob",
    }
    assert viewer.confine({"project": "acme"}) == {"project": "acme"}
    with pytest.raises(AdminError) as refused:
        viewer.confine({"project": "globex"})
    assert refused.value.status == 403
    assert refused.value.param == "query.project"
    assert viewer.can_see({"project": "acme", "principal": "bob"})
    assert not viewer.can_see({"project": "globex", "principal": "alice"})
