"""Money sent to the admin API as a JSON number is taken exactly, digit for digit, like a
string: it never passes through a float (``1.0000000000000001`` stayed ``1``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from admin_support import AdminGateway, admin_gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("money")) as running:
        yield running


def _send(gw: AdminGateway, method: str, path: str, text: str) -> Any:
    """``text`` is the JSON body as written (numbers a JSON encoder would round)."""
    reply = gw.request(method, path, content=text, headers={"content-type": "application/json"})
    assert reply.status_code in (200, 201), reply.text
    return reply.json()


def _budget(budget_id: str, hard_limit: str, extra: str = "") -> str:
    return (
        f'{{"id": "{budget_id}", "scope": {{"kind": "project", "id": "acme"}}, '
        f'"metric": "usd", "interval": "daily", "hard_limit": {hard_limit}{extra}}}'
    )


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("0.1", "0.1"),
        ('"0.1"', "0.1"),
        ("1.0000000000000001", "1.0000000000000001"),
        ('"1.0000000000000001"', "1.0000000000000001"),
        ("123456789012345.67", "123456789012345.67"),
        ("2.5e-7", "0.00000025"),
        ("7", "7"),
    ],
)
def test_budget_limits_are_exact(gw: AdminGateway, sent: str, stored: str) -> None:
    budget_id = f"exact-{abs(hash(sent))}"
    created = _send(gw, "POST", "/budgets", _budget(budget_id, sent))
    assert created["hard_limit"] == stored
    assert gw.get(f"/budgets/{budget_id}").json()["hard_limit"] == stored


def test_updates_and_thresholds_are_exact(gw: AdminGateway) -> None:
    _send(gw, "POST", "/budgets", _budget("exact-update", "5"))
    changes = '{"soft_limit": 0.100000000000000006, "alert_thresholds": [0.333333333333333333]}'
    updated = _send(gw, "PUT", "/budgets/exact-update", changes)
    assert updated["soft_limit"] == "0.100000000000000006"
    assert updated["alert_thresholds"] == ["0.333333333333333333"]


def test_prices_are_exact(gw: AdminGateway) -> None:
    price = '{"model": "gpt-4o", "input_per_mtok": 2.5000000000000001, "output_per_mtok": 10}'
    row = _send(gw, "POST", "/pricing", price)
    assert row["input_per_mtok"] == "2.5000000000000001"
    assert row["output_per_mtok"] == "10"
    sheet = (
        '[{"model": "gpt-4o-mini", "input_per_mtok": 0.15000000000000001, "output_per_mtok": 0.6}]'
    )
    imported = _send(
        gw, "POST", "/pricing/import", orjson.dumps({"format": "json", "content": sheet}).decode()
    )
    assert imported["data"][0]["input_per_mtok"] == "0.15000000000000001"


def test_not_a_number_is_refused(gw: AdminGateway) -> None:
    for value in ("NaN", "Infinity", "true"):
        reply = gw.post(
            "/budgets",
            content=_budget("not-a-number", value),
            headers={"content-type": "application/json"},
        )
        assert reply.status_code == 422, (value, reply.text)
        assert reply.json()["error"]["param"] == "body.hard_limit"
