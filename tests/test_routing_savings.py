"""Honest routing numbers, as a user reads them from the admin API and the CLI.

"Saved by routing" is counterfactual on the tokens actually used: what they would have cost on
the requested model, less what they cost on the model used. A "hi" rerouted from gpt-4o to
gpt-4o-mini saves a fraction of a cent, not the planner's worst-case bound; an escalation to a
dearer model is extra spend, reported beside the savings and never netted against them.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from admin_support import CONFIG, AdminGateway, admin_gateway

# solo may spend next to nothing: its requests are refused.
SOLO_CAP = """
  - {{id: solo-cap, scope: {{kind: principal, id: solo}}, metric: usd, interval: daily,
     hard_limit: 0.00001}}
"""

COMPLEX = (
    "Prove step by step that the algorithm terminates, then analyze its complexity and compare "
    "it with the alternatives.\n```python\ndef f(n):\n    return f(n - 1) if n else 0\n```\n"
    + "The cache layer sits between the API and the database. "
    * 130
)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("savings"), CONFIG + SOLO_CAP) as running:
        yield running


def _decision(gw: AdminGateway, key: str, text: str, **body: object) -> dict[str, object]:
    reply = gw.chat(key, text, model="gpt-4o", **body)
    assert reply.status_code == 200, reply.text
    gw.flush()
    detail = gw.get(f"/decisions/{reply.headers['x-spendgate-decision-id']}")
    assert detail.status_code == 200
    data: dict[str, object] = detail.json()
    return data


def _summary(gw: AdminGateway, principal: str) -> dict[str, str]:
    body: dict[str, str] = gw.get("/usage/summary", params={"principal": principal}).json()
    return body


def test_a_rerouted_hello_saves_what_its_tokens_cost_more_on_the_requested_model(
    gw: AdminGateway,
) -> None:
    decision = _decision(gw, "alice", "hi", max_tokens=4000)
    assert (decision["requested_model"], decision["actual_model"]) == ("gpt-4o", "gpt-4o-mini")
    actual = Decimal(str(decision["actual_cost_usd"]))
    requested = Decimal(str(decision["requested_cost_usd"]))
    # gpt-4o costs 50/3 times gpt-4o-mini, on input and output alike ($2.50/$10 against
    # $0.15/$0.60 per million tokens): the counterfactual prices the same tokens.
    assert requested * 3 == actual * 50
    summary = _summary(gw, "alice")
    saved = Decimal(summary["saved_by_routing_usd"])
    assert saved == requested - actual
    assert Decimal(summary["extra_from_routing_usd"]) == 0
    # The planner's bound (4,000 output tokens) is labelled as one and far above the saving.
    assert Decimal(str(decision["estimated_saving_usd"])) > 10 * saved


def test_an_escalation_is_extra_spend_beside_the_savings(gw: AdminGateway) -> None:
    decision = _decision(gw, "bob", COMPLEX, max_tokens=200)
    assert decision["routing_action"] == "escalate"
    assert decision["actual_model"] == "claude-opus-4"
    extra = Decimal(str(decision["actual_cost_usd"])) - Decimal(str(decision["requested_cost_usd"]))
    assert extra > 0
    summary = _summary(gw, "bob")
    assert Decimal(summary["extra_from_routing_usd"]) == extra
    assert Decimal(summary["saved_by_routing_usd"]) == 0

    table = gw.cli("usage", "summary", "--principal", "bob")
    assert table.returncode == 0, table.stderr
    assert "extra from routing" in table.stdout
    assert "saved by routing" in table.stdout


def test_a_request_served_as_asked_counts_neither(gw: AdminGateway) -> None:
    reply = gw.chat("dave", "hi", model="gpt-4o-mini", max_tokens=50)
    assert reply.status_code == 200
    gw.flush()
    summary = _summary(gw, "dave")
    assert summary["requests"] == 1  # type: ignore[comparison-overlap]
    assert Decimal(summary["saved_by_routing_usd"]) == 0
    assert Decimal(summary["extra_from_routing_usd"]) == 0


def test_a_refused_decision_names_no_actual_model_or_provider(gw: AdminGateway) -> None:
    reply = gw.chat("solo", "hi", model="gpt-4o-mini", max_tokens=100)
    assert reply.status_code == 429
    decision_id = reply.headers["x-spendgate-decision-id"]
    gw.flush()
    detail = gw.get(f"/decisions/{decision_id}").json()
    assert (detail["actual_model"], detail["provider"]) == (None, None)
    assert detail["requested_model"] == "gpt-4o-mini"
    assert not any(candidate["chosen"] for candidate in detail["candidates"])
    listed = gw.get("/decisions", params={"principal": "solo"}).json()["data"]
    assert [(d["id"], d["actual_model"], d["provider"]) for d in listed] == [
        (decision_id, None, None)
    ]
    shown = gw.cli("decisions", "show", decision_id)
    assert shown.returncode == 0, shown.stderr
    assert "none, refused (planned gpt-4o-mini)" in shown.stdout
