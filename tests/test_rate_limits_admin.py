"""Rate limits through the admin API: created, changed and deleted while the gateway runs
(taking effect on the next request, no restart), persisted (a restart keeps them), config
ones read-only, validation errors naming the field, admin only."""

from __future__ import annotations

from pathlib import Path

from admin_support import CONFIG, admin_gateway

LIMITED = (
    CONFIG
    + """rate_limits:
  - {{id: config-rpm, scope: {{kind: project, id: globex}}, requests_per_minute: 100}}
"""
)


def test_create_update_delete_take_effect_without_restart(tmp_path: Path) -> None:
    with admin_gateway(tmp_path, LIMITED) as gateway:
        assert gateway.chat("alice", model="gpt-4o-mini").status_code == 200
        created = gateway.post(
            "/rate-limits",
            json={"id": "alice-rpm", "scope": {"kind": "principal", "id": "alice"},
                  "requests_per_minute": 1},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        assert created.json() == {
            "id": "alice-rpm",
            "source": "api",
            "scope": {"kind": "principal", "id": "alice"},
            "requests_per_minute": 1,
            "tokens_per_minute": None,
            "models": None,
        }
        assert gateway.chat("alice", model="gpt-4o-mini").status_code == 200
        refused = gateway.chat("alice", model="gpt-4o-mini")
        assert refused.status_code == 429
        assert refused.json()["error"]["rate_limit_id"] == "alice-rpm"
        assert gateway.chat("bob", model="gpt-4o-mini").status_code == 200  # another principal

        # Raised: room at once (the bucket's capacity is the new limit).
        changed = gateway.put("/rate-limits/alice-rpm", json={"requests_per_minute": 50})
        assert changed.status_code == 200, changed.text
        assert changed.json()["requests_per_minute"] == 50
        assert gateway.chat("alice", model="gpt-4o-mini").status_code == 200

        listed = gateway.get("/rate-limits").json()["data"]
        assert [(entry["id"], entry["source"]) for entry in listed] == [
            ("config-rpm", "config"),
            ("alice-rpm", "api"),
        ]
        assert gateway.put("/rate-limits/alice-rpm", json={"requests_per_minute": 1}).is_success
        assert gateway.chat("alice", model="gpt-4o-mini").status_code == 429
        assert gateway.delete("/rate-limits/alice-rpm").status_code == 204
        assert gateway.chat("alice", model="gpt-4o-mini").status_code == 200
        assert gateway.get("/rate-limits/alice-rpm").status_code == 404


def test_stored_limits_survive_a_restart(tmp_path: Path) -> None:
    body = {"id": "kept", "scope": {"kind": "api_key", "id": "*"}, "tokens_per_minute": 5000,
            "models": ["gpt-4o-mini"]}  # fmt: skip
    with admin_gateway(tmp_path, LIMITED) as gateway:
        assert gateway.post("/rate-limits", json=body).status_code == 201
    with admin_gateway(tmp_path, LIMITED) as gateway:
        found = gateway.get("/rate-limits/kept")
        assert found.status_code == 200
        assert found.json()["models"] == ["gpt-4o-mini"]
        reply = gateway.chat("alice", model="gpt-4o-mini", max_tokens=10)
        assert reply.headers["x-ratelimit-limit-tokens"] == "5000"


def test_config_limits_are_read_only_and_errors_name_the_field(tmp_path: Path) -> None:
    with admin_gateway(tmp_path, LIMITED) as gateway:
        assert gateway.get("/rate-limits/config-rpm").json()["source"] == "config"
        managed = gateway.put("/rate-limits/config-rpm", json={"requests_per_minute": 1})
        assert managed.status_code == 409
        assert managed.json()["error"]["code"] == "config_managed"
        assert gateway.delete("/rate-limits/config-rpm").status_code == 409
        taken = gateway.post(
            "/rate-limits",
            json={"id": "config-rpm", "scope": {"kind": "model", "id": "*"},
                  "requests_per_minute": 5},
        )  # fmt: skip
        assert taken.status_code == 409
        cases = [
            ({"id": "x", "scope": {"kind": "model", "id": "*"}}, "requests_per_minute"),
            ({"id": "x", "scope": {"kind": "team", "id": "a"}, "requests_per_minute": 1},
             "scope.kind"),
            ({"id": "x", "scope": {"kind": "model", "id": "*"}, "requests_per_minute": -1},
             "requests_per_minute"),
            ({"id": "x", "scope": {"kind": "model", "id": "*"}, "requests_per_minute": 1,
              "models": ["no-such-model"]}, "models"),
        ]  # fmt: skip
        for document, field in cases:
            reply = gateway.post("/rate-limits", json=document)
            assert reply.status_code == 422, reply.text
            error = reply.json()["error"]
            assert error["code"] == "invalid_request"
            assert field in error["param"], (document, error)
        assert gateway.put("/rate-limits/nope", json={}).status_code == 404
        changed_id = gateway.post(
            "/rate-limits",
            json={"id": "y", "scope": {"kind": "model", "id": "*"}, "requests_per_minute": 9},
        )
        assert changed_id.status_code == 201
        renamed = gateway.put("/rate-limits/y", json={"id": "z"})
        assert renamed.status_code == 422


def test_only_admins_manage_rate_limits(tmp_path: Path) -> None:
    with admin_gateway(tmp_path, LIMITED) as gateway:
        secret = gateway.secrets["alice"]
        assert gateway.get("/rate-limits", token=secret).status_code == 403
        body = {"id": "mine", "scope": {"kind": "model", "id": "*"}, "requests_per_minute": 1}
        assert gateway.post("/rate-limits", token=secret, json=body).status_code == 403
        assert gateway.get("/rate-limits", token=None).status_code == 401


def test_the_cli_lists_creates_and_deletes(tmp_path: Path) -> None:
    with admin_gateway(tmp_path, LIMITED) as gateway:
        created = gateway.cli(
            "rate-limits", "create", "--id", "cli-rpm", "--scope", "api_key:*", "--rpm", "1",
            "--models", "gpt-4o-mini",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        assert "Created rate limit cli-rpm" in created.stdout
        assert gateway.chat("dave", model="gpt-4o-mini").status_code == 200
        assert gateway.chat("dave", model="gpt-4o-mini").status_code == 429
        listed = gateway.cli("rate-limits", "list")
        assert listed.returncode == 0, listed.stderr
        assert "cli-rpm" in listed.stdout
        assert "api_key:*" in listed.stdout
        assert "config-rpm" in listed.stdout
        as_json = gateway.cli("rate-limits", "list", "--json")
        assert '"requests_per_minute": 1' in as_json.stdout
        refused = gateway.cli(
            "rate-limits", "create", "--id", "bad", "--scope", "team:x", "--rpm", "1"
        )
        assert refused.returncode != 0
        assert "scope.kind" in refused.stderr + refused.stdout
        assert gateway.cli("rate-limits", "delete", "cli-rpm").returncode == 0
        assert gateway.chat("dave", model="gpt-4o-mini").status_code == 200
        managed = gateway.cli("rate-limits", "delete", "config-rpm")
        assert managed.returncode != 0
