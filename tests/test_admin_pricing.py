"""Admin API pricing over real HTTP: listing with sources and the catalog's age, overrides
checked for plausibility, config rows read-only, all-or-nothing CSV/JSON imports, and an
override changing the very next decision's estimated cost."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from admin_support import CONFIG, AdminGateway, admin_gateway

PRICED_CONFIG = (
    CONFIG
    + """
pricing:
  - {{model: claude-opus-4, input_per_mtok: 15, output_per_mtok: 75}}
"""
)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("pricing"), PRICED_CONFIG) as running:
        yield running


def rows(gw: AdminGateway, model: str) -> list[dict[str, Any]]:
    reply = gw.get("/pricing", params={"model": model})
    assert reply.status_code == 200
    data: list[dict[str, Any]] = reply.json()["data"]
    return data


def test_list_names_sources_and_the_catalog_age(gw: AdminGateway) -> None:
    reply = gw.get("/pricing", token=gw.secrets["alice"])  # any key may read prices
    assert reply.status_code == 200
    body = reply.json()
    assert body["catalog"]["package"] == "genai-prices"
    assert body["catalog"]["age_days"] >= 0
    models = {row["model"] for row in body["data"]}
    assert {"gpt-4o", "gpt-4o-mini", "claude-opus-4"} <= models
    opus = [row for row in body["data"] if row["model"] == "claude-opus-4"]
    config_row = next(row for row in opus if row["source"] == "config")
    assert config_row["id"] == "config-0"
    assert config_row["in_effect"] is True  # config wins over the catalog
    assert all(row["id"] is None for row in opus if row["source"] == "catalog")
    assert gw.get("/pricing", token=None).status_code == 401
    everything = gw.get("/pricing", params={"all": "true"}).json()["data"]
    assert len({row["model"] for row in everything}) > 100


def test_an_override_changes_the_next_estimate_and_unset_restores_it(gw: AdminGateway) -> None:
    def estimate() -> Decimal:
        reply = gw.chat("alice", "Say hello.", model="gpt-4o", max_tokens=100)
        assert reply.status_code == 200
        return Decimal(reply.headers["x-spendgate-estimated-cost-usd"])

    before = estimate()
    created = gw.post(
        "/pricing", json={"model": "gpt-4o-mini", "input_per_mtok": "1.5", "output_per_mtok": "6"}
    )
    assert created.status_code == 201, created.text
    row = created.json()
    assert row["source"] == "api"
    assert row["id"].startswith("api-")
    assert row["in_effect"] is True
    assert (row["input_per_mtok"], row["output_per_mtok"]) == ("1.5", "6")
    after = estimate()
    assert after == before * 10  # ten times the price per token
    assert gw.delete(f"/pricing/{row['id']}").status_code == 204
    assert estimate() == before
    assert gw.delete(f"/pricing/{row['id']}").status_code == 404


def test_prices_are_checked_like_the_config_file(gw: AdminGateway) -> None:
    per_token = gw.post("/pricing", json={"model": "gpt-4o", "input_per_mtok": 0.0000025,
                                          "output_per_mtok": 10})  # fmt: skip
    assert per_token.status_code == 422
    error = per_token.json()["error"]
    assert error["param"] == "body.input_per_mtok"
    assert "looks like a price per token" in error["message"]
    unknown = gw.post("/pricing", json={"model": "no-such-model", "input_per_mtok": 1,
                                        "output_per_mtok": 1})  # fmt: skip
    assert unknown.status_code == 422
    assert unknown.json()["error"]["param"] == "body.model"
    assert gw.post("/pricing", json={"model": "gpt-4o"}).status_code == 422
    refused = gw.post(
        "/pricing",
        json={"model": "gpt-4o", "input_per_mtok": 1, "output_per_mtok": 1},
        token=gw.secrets["alice"],
    )
    assert refused.status_code == 403


def test_config_and_catalog_rows_cannot_be_deleted(gw: AdminGateway) -> None:
    reply = gw.delete("/pricing/config-0")
    assert reply.status_code == 409
    assert reply.json()["error"]["code"] == "config_managed"
    assert gw.delete("/pricing/catalog-gpt-4o").status_code == 404
    assert gw.delete("/pricing/api-999999").status_code == 404


def test_import_csv_and_json_all_or_nothing(gw: AdminGateway) -> None:
    sheet = (
        "model,input_per_mtok,output_per_mtok,cached_input_per_mtok,effective_from\n"
        "gpt-4o-mini,0.2,0.8,0.1,2020-01-01\n"
        "gpt-4o,3,12,,2020-01-01\n"
    )
    reply = gw.post("/pricing/import", json={"format": "csv", "content": sheet})
    assert reply.status_code == 201, reply.text
    assert reply.json()["imported"] == 2
    mini = [row for row in rows(gw, "gpt-4o-mini") if row["source"] == "api"]
    assert mini[0]["cached_input_per_mtok"] == "0.1"
    assert mini[0]["in_effect"] is True

    before = len(rows(gw, "gpt-4o"))
    bad = "model,input_per_mtok,output_per_mtok\ngpt-4o,1,2\nclaude-opus-4,0.000015,75\n"
    refused = gw.post("/pricing/import", json={"format": "csv", "content": bad})
    assert refused.status_code == 422
    message = refused.json()["error"]["message"]
    assert "line 3.input_per_mtok" in message
    assert len(rows(gw, "gpt-4o")) == before  # the valid first row was not stored either

    as_json = (
        '{"pricing": [{"model": "claude-opus-4", "input_per_mtok": 14, "output_per_mtok": 70}]}'
    )
    assert (
        gw.post("/pricing/import", json={"format": "json", "content": as_json}).status_code == 201
    )
    broken = gw.post("/pricing/import", json={"format": "json", "content": "[{"})
    assert broken.status_code == 422
    empty = gw.post("/pricing/import", json={"format": "csv", "content": ""})
    assert empty.status_code == 422
    json_bad = gw.post(
        "/pricing/import",
        json={"format": "json", "content": '[{"model": "gpt-4o", "input_per_mtok": 1}]'},
    )
    assert json_bad.json()["error"]["param"] == "body.content"
    assert "[0].output_per_mtok: required key is missing" in json_bad.json()["error"]["message"]
    assert gw.post("/pricing/import", json={"format": "xml", "content": "x"}).status_code == 422


def test_a_partial_override_keeps_the_other_prices_and_says_so(gw: AdminGateway) -> None:
    full = {"model": "gpt-4o-mini", "input_per_mtok": "0.2", "output_per_mtok": "0.8",
            "cached_input_per_mtok": "0.05", "per_request": "0.001",
            "effective_from": "2026-06-01"}  # fmt: skip
    base = gw.post("/pricing", json=full).json()
    partial = {"model": "gpt-4o-mini", "input_per_mtok": "0.25", "effective_from": "2026-07-01"}
    reply = gw.post("/pricing", json=partial)
    assert reply.status_code == 201, reply.text
    made = reply.json()
    assert (made["input_per_mtok"], made["output_per_mtok"]) == ("0.25", "0.8")
    assert (made["cached_input_per_mtok"], made["per_request"]) == ("0.05", "0.001")
    assert made["kept"] == ["output_per_mtok", "cached_input_per_mtok", "per_request"]
    assert made["kept_from"]["id"] == base["id"]
    assert [row["id"] for row in rows(gw, "gpt-4o-mini") if row["in_effect"]] == [made["id"]]
    for row in (made, base):
        assert gw.delete(f"/pricing/{row['id']}").status_code == 204


def test_price_ids_are_never_reused(gw: AdminGateway) -> None:
    body = {"model": "gpt-4o-mini", "input_per_mtok": "0.2", "output_per_mtok": "0.8"}
    first = gw.post("/pricing", json=body).json()["id"]
    assert gw.delete(f"/pricing/{first}").status_code == 204  # the newest row
    second = gw.post("/pricing", json=body).json()["id"]
    assert second != first
    assert gw.delete(f"/pricing/{second}").status_code == 204


def test_list_searches_and_filters_by_provider(gw: AdminGateway) -> None:
    def models(**params: object) -> set[str]:
        reply = gw.get("/pricing", params=params)
        assert reply.status_code == 200, reply.text
        return {row["model"] for row in reply.json()["data"]}

    assert models(search="OPUS") == {"claude-opus-4"}  # configured models, any case
    every_opus = models(all=True, search="opus")
    assert len(every_opus) > 1
    assert all("opus" in model for model in every_opus)
    assert models(provider="beta") == {"claude-opus-4"}  # a configured provider
    catalog_anthropic = models(all=True, provider="anthropic")
    assert catalog_anthropic
    assert all(model.startswith("claude") for model in catalog_anthropic)
    assert models(all=True, search="gpt-4o", provider="anthropic") == set()
