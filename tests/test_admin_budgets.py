"""Admin API budgets over real HTTP: CRUD, validation with the YAML's messages, config records
read-only, scoping of non-admin keys, live consumption, and a budget created through the API
governing the very next proxied request."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from admin_support import AdminGateway, admin_gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("budgets")) as running:
        yield running


def budget(budget_id: str, **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "id": budget_id,
        "scope": {"kind": "project", "id": "globex"},
        "metric": "usd",
        "interval": "daily",
        "hard_limit": "3",
    }
    spec.update(fields)
    return spec


def by_id(reply: Any) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in reply.json()["data"]}


def test_list_shows_config_budgets_read_only_with_consumption(gw: AdminGateway) -> None:
    assert gw.chat("alice").status_code == 200
    gw.flush()
    budgets = by_id(gw.get("/budgets"))
    daily = budgets["principal-daily-usd"]
    assert daily["source"] == "config"
    assert daily["enabled"] is True
    assert daily["scope"] == {"kind": "principal", "id": "*"}
    assert daily["interval"] == {"kind": "daily", "timezone": "UTC", "duration": None}
    assert (daily["soft_limit"], daily["hard_limit"]) == ("1", "5")
    alice = next(item for item in daily["consumption"] if item["member"] == "alice")
    consumed = Decimal(alice["consumed"])
    assert consumed > 0
    assert Decimal(alice["remaining"]) == Decimal(5) - consumed
    assert Decimal(alice["percent"]) == (consumed * 20).quantize(Decimal("0.01"), "ROUND_FLOOR")
    assert alice["window"]["start"].endswith("T00:00:00Z")
    # A single-member scope always lists its member, used or not.
    tokens = budgets["acme-monthly-tokens"]
    assert [item["member"] for item in tokens["consumption"]] == ["acme"]
    assert Decimal(tokens["consumption"][0]["consumed"]) > 0


def test_auth_is_required_and_writes_need_admin(gw: AdminGateway) -> None:
    assert gw.get("/budgets", token=None).status_code == 401
    assert gw.get("/budgets", token="sg-wrong").status_code == 401
    refused = gw.post("/budgets", json=budget("by-alice"), token=gw.secrets["alice"])
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert gw.get("/budgets/by-alice").status_code == 404
    # An admin *key* may write, like the admin token.
    created = gw.post("/budgets", json=budget("by-ops"), token=gw.secrets["ops"])
    assert created.status_code == 201


def test_create_get_update_toggle_delete(gw: AdminGateway) -> None:
    created = gw.post(
        "/budgets",
        json=budget(
            "globex-weekly",
            interval={"kind": "weekly", "timezone": "Europe/Paris"},
            soft_limit=1.5,
            soft_action="degrade",
            degrade_to="gpt-4o-mini",
            filters={"models": ["gpt-4o"]},
        ),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["source"] == "api"
    assert body["soft_limit"] == "1.5"  # exact decimal string
    assert body["interval"] == {"kind": "weekly", "timezone": "Europe/Paris", "duration": None}
    assert body["filters"]["models"] == ["gpt-4o"]
    assert body["consumption"][0]["member"] == "globex"
    window_start = datetime.fromisoformat(body["consumption"][0]["window"]["start"])
    assert window_start.tzinfo is not None
    assert window_start.astimezone(ZoneInfo("Europe/Paris")).weekday() == 0  # a Monday
    assert gw.get("/budgets/globex-weekly").json() == body

    updated = gw.put("/budgets/globex-weekly", json={"hard_limit": "4", "soft_limit": None,
                                                     "soft_action": "alert"})  # fmt: skip
    assert updated.status_code == 200, updated.text
    assert updated.json()["hard_limit"] == "4"
    assert updated.json()["soft_limit"] is None
    assert updated.json()["interval"]["timezone"] == "Europe/Paris"  # untouched fields kept

    disabled = gw.post("/budgets/globex-weekly/disable")
    assert disabled.json()["enabled"] is False
    assert gw.post("/budgets/globex-weekly/enable").json()["enabled"] is True

    assert gw.delete("/budgets/globex-weekly").status_code == 204
    missing = gw.get("/budgets/globex-weekly")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert gw.delete("/budgets/globex-weekly").status_code == 404


def test_validation_errors_read_like_the_config_file(gw: AdminGateway) -> None:
    reply = gw.post("/budgets", json=budget("bad", hard_limit=-1))
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["param"] == "body.hard_limit"
    assert "must be greater than 0" in error["message"]

    typo = gw.post("/budgets", json={**budget("bad"), "hard_limt": 3})
    assert typo.status_code == 422
    assert "did you mean 'hard_limit'" in typo.json()["error"]["message"]

    scope = gw.post("/budgets", json=budget("bad", scope={"kind": "project"}))
    assert scope.json()["error"]["param"] == "body.scope.id"

    degrade = gw.post("/budgets", json=budget("bad", degrade_to="no-such-model"))
    assert degrade.status_code == 422
    assert degrade.json()["error"]["param"] == "body.degrade_to"

    for bad_body in ([1, 2], "text", None):
        reply = gw.post("/budgets", json=bad_body)
        assert reply.status_code == 422, bad_body
    assert gw.get("/budgets").status_code == 200
    assert "bad" not in by_id(gw.get("/budgets"))


def test_config_budgets_are_read_only_and_ids_are_one_namespace(gw: AdminGateway) -> None:
    for method, path, body in (
        ("PUT", "/budgets/principal-daily-usd", {"hard_limit": 9}),
        ("POST", "/budgets/principal-daily-usd/disable", None),
        ("DELETE", "/budgets/principal-daily-usd", None),
    ):
        reply = gw.request(method, path, json=body)
        assert reply.status_code == 409, (method, path)
        error = reply.json()["error"]
        assert error["code"] == "config_managed"
        assert "YAML" in error["message"]
    clash = gw.post("/budgets", json=budget("principal-daily-usd"))
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "conflict"
    assert gw.post("/budgets", json=budget("twice")).status_code == 201
    assert gw.post("/budgets", json=budget("twice")).status_code == 409


def test_what_a_counter_measures_cannot_change(gw: AdminGateway) -> None:
    assert gw.post("/budgets", json=budget("fixed-shape")).status_code == 201
    for change, param in (
        ({"metric": "tokens"}, "body.metric"),
        ({"interval": "monthly"}, "body.interval"),
        ({"interval": {"kind": "daily", "timezone": "Europe/Paris"}}, "body.interval"),
        ({"interval": {"kind": "rolling", "duration": "1d"}}, "body.interval"),
        ({"scope": {"kind": "principal", "id": "bob"}}, "body.scope.kind"),
        ({"id": "renamed"}, "body.id"),
    ):
        reply = gw.put("/budgets/fixed-shape", json=change)
        assert reply.status_code == 422, change
        assert reply.json()["error"]["param"] == param
    assert gw.put("/budgets/fixed-shape", json={"scope": {"kind": "project", "id": "acme"}}).json()[
        "scope"
    ] == {"kind": "project", "id": "acme"}


def test_a_created_budget_blocks_the_next_request_and_disabling_releases_it(
    gw: AdminGateway,
) -> None:
    assert gw.chat("dave").status_code == 200
    created = gw.post(
        "/budgets", json=budget("globex-tiny", hard_limit="0.000001", scope={"kind": "principal",
                                                                           "id": "dave"})
    )  # fmt: skip
    assert created.status_code == 201
    blocked = gw.chat("dave")
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "budget_exceeded"
    assert blocked.json()["error"]["policy_id"] == "globex-tiny"
    assert gw.chat("alice").status_code == 200  # another principal is not affected
    gw.post("/budgets/globex-tiny/disable")
    assert gw.chat("dave").status_code == 200
    gw.post("/budgets/globex-tiny/enable")
    assert gw.chat("dave").status_code == 429
    assert gw.delete("/budgets/globex-tiny").status_code == 204
    assert gw.chat("dave").status_code == 200


def test_a_deleted_budgets_id_with_counted_usage_is_not_reused(gw: AdminGateway) -> None:
    assert gw.post("/budgets", json=budget("reused", scope={"kind": "project", "id": "acme"}))
    assert gw.chat("alice").status_code == 200
    gw.flush()
    assert gw.delete("/budgets/reused").status_code == 204
    again = gw.post("/budgets", json=budget("reused"))
    assert again.status_code == 409
    assert "still counted" in again.json()["error"]["message"]


def test_a_project_key_sees_only_budgets_that_apply_to_it(gw: AdminGateway) -> None:
    gw.post("/budgets", json=budget("globex-only"))
    gw.flush()
    seen = by_id(gw.get("/budgets", token=gw.secrets["alice"]))
    assert "globex-only" not in seen
    assert {"principal-daily-usd", "acme-monthly-tokens"} <= set(seen)
    # For an each-member budget a key sees only its own member's consumption.
    assert {item["member"] for item in seen["principal-daily-usd"]["consumption"]} <= {"alice"}
    assert gw.get("/budgets/globex-only", token=gw.secrets["alice"]).status_code == 404
    assert gw.get("/budgets/globex-only", token=gw.secrets["dave"]).status_code == 200


def test_effective_lists_every_policy_that_applies(gw: AdminGateway) -> None:
    gw.post("/budgets", json=budget("acme-4o", scope={"kind": "project", "id": "acme"},
                                    filters={"models": ["gpt-4o"]}))  # fmt: skip
    reply = gw.get("/budgets/effective", params={"project": "acme", "principal": "bob"})
    assert reply.status_code == 200
    applying = by_id(reply)
    assert {"principal-daily-usd", "acme-monthly-tokens", "acme-4o"} <= set(applying)
    assert "globex-only" not in applying
    assert [c["member"] for c in applying["principal-daily-usd"]["consumption"]] == ["bob"]
    # A model filter excludes the policies filtered to other models.
    other = by_id(
        gw.get("/budgets/effective", params={"project": "acme", "model": "claude-opus-4"})
    )
    assert "acme-4o" not in other
    # A non-admin key is confined to its own project.
    own = gw.get("/budgets/effective", token=gw.secrets["alice"])
    assert "acme-monthly-tokens" in by_id(own)
    other_project = gw.get(
        "/budgets/effective", params={"project": "globex"}, token=gw.secrets["alice"]
    )
    assert other_project.status_code == 403
    assert other_project.json()["error"]["param"] == "query.project"
    bad = gw.get("/budgets/effective", params={"task_class": "nonsense"})
    assert bad.status_code == 422


def test_a_rolling_duration_out_of_bounds_is_refused_and_nothing_breaks(gw: AdminGateway) -> None:
    # 900000 days before now is before year 1: the window's arithmetic overflowed on every
    # request in the budget's scope and on every listing, once the record was saved.
    for duration in ("900000d", "99999999999999w", "367d"):
        rolling = {"kind": "rolling", "duration": duration}
        acme = {"kind": "project", "id": "acme"}
        reply = gw.post("/budgets", json=budget("far-back", scope=acme, interval=rolling))
        assert reply.status_code == 422, (duration, reply.text)
        error = reply.json()["error"]
        assert error["param"] == "body.interval.duration", duration
        assert "at most 366 days" in error["message"] or "too long" in error["message"]
    assert gw.post("/budgets", json=budget("year-back", interval={"kind": "rolling",
                   "duration": "366d"})).status_code == 201  # fmt: skip
    assert gw.chat("alice").status_code == 200
    assert gw.chat("dave").status_code == 200
    listed = gw.get("/budgets")
    assert listed.status_code == 200
    assert "far-back" not in by_id(listed)
    assert by_id(listed)["year-back"]["interval"]["duration"] == "366d"


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("hard_limit", "1e999999999", "at most"),  # overflowed Decimal arithmetic
        ("hard_limit", "1e-999999999", "decimal places"),  # a gigabyte of digits to store
        ("hard_limit", "1e16", "at most"),
        ("soft_limit", "0.0000000000000000001", "decimal places"),
        ("alert_thresholds", ["1e-999999999"], "decimal places"),
        ("alert_thresholds", ["1.5"], "(0, 1]"),
    ],
)
def test_amounts_a_budget_cannot_hold_are_refused(
    gw: AdminGateway, field: str, value: object, why: str
) -> None:
    reply = gw.post("/budgets", json=budget("huge-amount", **{field: value}))
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["param"].startswith(f"body.{field}")
    assert why in error["message"]
    assert gw.get("/budgets").status_code == 200


def test_a_deleted_budgets_id_reused_with_another_metric_starts_on_fresh_counters(
    gw: AdminGateway,
) -> None:
    acme = {"kind": "project", "id": "acme"}
    assert gw.post("/budgets", json=budget("recycled", scope=acme, metric="tokens",
                   hard_limit="100000")).status_code == 201  # fmt: skip
    assert gw.chat("alice").status_code == 200
    gw.flush()
    assert Decimal(by_id(gw.get("/budgets"))["recycled"]["consumption"][0]["settled"]) > 5
    assert gw.delete("/budgets/recycled").status_code == 204
    # As dollars, the tokens counted would be over the limit: they are never read as dollars.
    again = gw.post("/budgets", json=budget("recycled", scope=acme, hard_limit="5"))
    assert again.status_code == 201, again.text
    assert again.json()["consumption"][0]["settled"] == "0"
    assert gw.chat("alice").status_code == 200
