"""Admin API keys over real HTTP: the secret shown once and stored only as a digest, listing
without secrets, revocation and rotation taking effect on the very next request, scoping."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from admin_support import AdminGateway, admin_gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("keys")) as running:
        yield running


def stored_key(gw: AdminGateway, key_id: str) -> tuple[object, ...]:
    """The key's row as the database holds it (on whichever database the journal uses)."""
    journal = gw.served.journal
    assert journal is not None
    with journal.engine.connect() as connection:
        row = connection.execute(
            text("SELECT * FROM api_keys WHERE id = :id"), {"id": key_id}
        ).one()
    return tuple(row)


def test_create_shows_the_secret_once_and_stores_only_its_digest(gw: AdminGateway) -> None:
    reply = gw.post("/keys", json={"id": "k-eve", "principal": "eve", "project": "acme",
                                   "models": ["gpt-4o-mini"]})  # fmt: skip
    assert reply.status_code == 201, reply.text
    created = reply.json()
    secret = created["secret"]
    assert secret.startswith("sg-")
    assert len(secret) > 30
    assert created["source"] == "api"
    assert created["active"] is True
    assert created["models"] == ["gpt-4o-mini"]
    # The key works at once, with its identity and model allowance.
    assert gw.chat(secret).status_code == 403  # gpt-4o is not among its models
    assert gw.chat(secret, model="gpt-4o-mini").status_code == 200
    listed = {key["id"]: key for key in gw.get("/keys").json()["data"]}
    assert "secret" not in listed["k-eve"]
    assert secret not in gw.get("/keys").text
    stored = stored_key(gw, "k-eve")
    assert secret not in repr(stored)
    assert hashlib.sha256(secret.encode()).hexdigest() in stored
    assert hashlib.sha256(secret.encode()).hexdigest() not in gw.get("/keys").text


def test_config_keys_are_listed_read_only(gw: AdminGateway) -> None:
    listed = {key["id"]: key for key in gw.get("/keys").json()["data"]}
    assert listed["alice"]["source"] == "config"
    assert listed["ops"]["permissions"] == ["admin", "approver"]
    for method, path in (("DELETE", "/keys/alice"), ("POST", "/keys/alice/rotate")):
        reply = gw.request(method, path)
        assert reply.status_code == 409
        assert reply.json()["error"]["code"] == "config_managed"
    clash = gw.post("/keys", json={"id": "alice", "principal": "x"})
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "conflict"


def test_revoke_stops_the_key_at_once_and_keeps_it_for_audit(gw: AdminGateway) -> None:
    secret = gw.post("/keys", json={"id": "k-temp", "project": "acme"}).json()["secret"]
    assert gw.chat(secret).status_code == 200
    revoked = gw.delete("/keys/k-temp")
    assert revoked.status_code == 200
    assert revoked.json()["active"] is False
    assert revoked.json()["revoked_at"]
    assert gw.chat(secret).status_code == 401
    assert gw.get("/budgets", token=secret).status_code == 401
    listed = {key["id"]: key for key in gw.get("/keys").json()["data"]}
    assert listed["k-temp"]["revoked_at"] is not None
    assert gw.delete("/keys/k-temp").status_code == 409  # already revoked
    assert gw.post("/keys", json={"id": "k-temp"}).status_code == 409  # ids are not reused
    assert gw.delete("/keys/no-such-key").status_code == 404


def test_rotate_replaces_the_secret_at_once(gw: AdminGateway) -> None:
    old = gw.post("/keys", json={"id": "k-rot", "principal": "rita"}).json()["secret"]
    rotated = gw.post("/keys/k-rot/rotate")
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != old
    assert rotated.json()["rotated_at"]
    assert gw.chat(old).status_code == 401
    assert gw.chat(new).status_code == 200
    assert gw.post("/keys/no-such-key/rotate").status_code == 404


def test_validation_auth_and_scoping(gw: AdminGateway) -> None:
    bad = gw.post("/keys", json={"principal": "x", "permissions": ["superuser"]})
    assert bad.status_code == 422
    assert bad.json()["error"]["param"] == "body.permissions[0]"
    assert gw.post("/keys", json={"principal": "x", "models": []}).status_code == 422
    assert gw.post("/keys", json={"principal": "x", "extra": 1}).status_code == 422
    assert gw.post("/keys", json=["x"]).status_code == 422
    assert gw.post("/keys", json={"principal": "x"}, token=gw.secrets["alice"]).status_code == 403
    assert gw.get("/keys", token=None).status_code == 401
    # An admin key may create keys; a generated id is given when none is asked for.
    made = gw.post("/keys", json={"principal": "gen"}, token=gw.secrets["ops"])
    assert made.status_code == 201
    assert made.json()["id"].startswith("key-")
    # A project key lists only the keys of its own project.
    seen = {key["id"] for key in gw.get("/keys", token=gw.secrets["alice"]).json()["data"]}
    assert {"alice", "bob"} <= seen
    assert "dave" not in seen
    assert "ops" not in seen
