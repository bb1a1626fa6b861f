"""The real ``spendgate`` command (a subprocess) against a running gateway: budgets, pricing
and keys, as tables and as the API's exact JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from admin_support import AdminGateway, admin_gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("cli-records")) as running:
        yield running


def test_budgets_list_table_and_json(gw: AdminGateway) -> None:
    assert gw.chat("alice").status_code == 200
    gw.flush()
    table = gw.cli("budgets", "list")
    assert table.returncode == 0, table.stderr
    assert "principal-daily-usd" in table.stdout
    assert "principal:*" in table.stdout
    assert "%" in table.stdout
    assert "░" in table.stdout  # the consumption bar
    as_json = gw.cli("budgets", "list", "--json")
    assert json.loads(as_json.stdout) == gw.get("/budgets").json()


def test_budgets_create_set_disable_delete(gw: AdminGateway, tmp_path: Path) -> None:
    made = gw.cli("budgets", "create", "--id", "cli-acme", "--scope", "project:acme",
                  "--metric", "usd", "--interval", "daily", "--hard-limit", "5",
                  "--soft-limit", "2", "--hard-action", "block")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "Created budget cli-acme" in made.stdout
    changed = gw.cli("budgets", "set", "cli-acme", "--hard-limit", "7", "--json")
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["hard_limit"] == "7"
    shown = gw.cli("budgets", "show", "cli-acme")
    assert "7 → block" in shown.stdout
    assert "project:acme" in shown.stdout
    assert gw.cli("budgets", "disable", "cli-acme").returncode == 0
    assert gw.get("/budgets/cli-acme").json()["enabled"] is False
    assert gw.cli("budgets", "enable", "cli-acme").returncode == 0
    deleted = gw.cli("budgets", "delete", "cli-acme")
    assert deleted.returncode == 0
    assert "Deleted" in deleted.stdout
    assert gw.get("/budgets/cli-acme").status_code == 404

    spec = tmp_path / "budget.yaml"
    spec.write_text(
        "id: from-file\nscope: {kind: agent, id: '*'}\nmetric: requests\n"
        "interval: {kind: rolling, duration: 1h}\nhard_limit: 100\n"
    )
    from_file = gw.cli("budgets", "create", "--file", str(spec), "--json")
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout)["interval"]["duration"] == "1h"


def test_budget_errors_are_one_line_and_exit_non_zero(gw: AdminGateway) -> None:
    bad = gw.cli("budgets", "create", "--id", "bad", "--scope", "project:acme", "--metric",
                 "usd", "--interval", "daily", "--hard-limit", "-3")  # fmt: skip
    assert bad.returncode == 1
    assert "must be greater than 0" in bad.stderr
    assert "body.hard_limit" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    config = gw.cli("budgets", "delete", "principal-daily-usd")
    assert config.returncode == 1
    assert "YAML" in config.stderr
    denied = gw.cli("budgets", "create", "--id", "x", token=gw.secrets["alice"])
    assert denied.returncode == 1
    assert gw.cli("budgets", "set", "acme-monthly-tokens").returncode == 1  # nothing to change


def test_budgets_effective(gw: AdminGateway) -> None:
    out = gw.cli("budgets", "effective", "--project", "acme", "--principal", "bob")
    assert out.returncode == 0, out.stderr
    assert "acme-monthly-tokens" in out.stdout
    assert "principal-daily-usd" in out.stdout
    as_json = json.loads(gw.cli("budgets", "effective", "--project", "globex", "--json").stdout)
    assert "acme-monthly-tokens" not in {item["id"] for item in as_json["data"]}


def test_pricing_list_set_unset_import(gw: AdminGateway, tmp_path: Path) -> None:
    listed = gw.cli("pricing", "list", "--model", "gpt-4o")
    assert listed.returncode == 0, listed.stderr
    assert "gpt-4o" in listed.stdout
    assert "catalog: genai-prices" in listed.stdout
    made = gw.cli("pricing", "set", "gpt-4o", "--input", "3", "--output", "12", "--json")
    assert made.returncode == 0, made.stderr
    row = json.loads(made.stdout)
    assert (row["source"], row["input_per_mtok"], row["in_effect"]) == ("api", "3", True)
    per_token = gw.cli("pricing", "set", "gpt-4o", "--input", "0.000003", "--output", "12")
    assert per_token.returncode == 1
    assert "per token" in per_token.stderr
    assert gw.cli("pricing", "unset", row["id"]).returncode == 0
    assert gw.cli("pricing", "unset", row["id"]).returncode == 1
    partial = gw.cli("pricing", "set", "gpt-4o", "--input", "3")
    assert partial.returncode == 0, partial.stderr
    assert "Kept from " in partial.stdout
    assert ": output price, cached input price, per-request fee." in partial.stdout
    searched = gw.cli("pricing", "list", "--all", "--search", "opus", "--provider", "anthropic",
                      "--json")  # fmt: skip
    assert searched.returncode == 0, searched.stderr
    limited = gw.cli("pricing", "list", "--all", "--limit", "5")
    assert limited.returncode == 0, limited.stderr
    assert "more rows not shown: narrow with --search" in limited.stdout
    found = {price["model"] for price in json.loads(searched.stdout)["data"]}
    assert found
    assert all("opus" in model for model in found)
    sheet = tmp_path / "prices.csv"
    sheet.write_text("model,input_per_mtok,output_per_mtok\ngpt-4o-mini,0.2,0.8\n")
    imported = gw.cli("pricing", "import", str(sheet))
    assert imported.returncode == 0, imported.stderr
    assert "Imported 1 price rows" in imported.stdout
    as_json = json.loads(gw.cli("pricing", "list", "--json").stdout)
    assert as_json == gw.get("/pricing").json()


def test_keys_create_list_rotate_revoke(gw: AdminGateway) -> None:
    made = gw.cli("keys", "create", "--id", "cli-key", "--principal", "cleo", "--project", "acme")
    assert made.returncode == 0, made.stderr
    secret = next(line for line in made.stdout.splitlines() if line.startswith("sg-"))
    assert "cannot show it again" in made.stdout
    assert gw.get("/budgets", token=secret).status_code == 200
    listed = gw.cli("keys", "list")
    assert "cli-key" in listed.stdout
    assert secret not in listed.stdout
    assert json.loads(gw.cli("keys", "list", "--json").stdout) == gw.get("/keys").json()
    rotated = gw.cli("keys", "rotate", "cli-key", "--json")
    new_secret = json.loads(rotated.stdout)["secret"]
    assert gw.get("/budgets", token=secret).status_code == 401
    assert gw.get("/budgets", token=new_secret).status_code == 200
    revoked = gw.cli("keys", "revoke", "cli-key")
    assert revoked.returncode == 0
    assert "Revoked" in revoked.stdout
    assert gw.get("/budgets", token=new_secret).status_code == 401
    assert gw.cli("keys", "revoke", "alice").returncode == 1
