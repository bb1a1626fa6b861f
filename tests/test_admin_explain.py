"""``POST /api/v1/explain`` over real HTTP: the decision a request would get — chosen model,
complexity terms, candidates, budget evaluations, estimate — with no provider call, nothing
reserved and nothing journaled; non-admin keys explain only as themselves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from admin_support import AdminGateway, admin_gateway

HARD = (
    "Prove step by step that the algorithm terminates, then analyze its complexity and compare "
    "it with the alternatives.\n```python\ndef f(n):\n    return f(n - 1) if n else 0\n```"
)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("explain")) as running:
        yield running


def _explain(
    gw: AdminGateway, text: str = "Say hi.", token: Any = None, max_tokens: int = 0, **fields: Any
) -> Any:
    request: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
    if max_tokens:
        request["max_tokens"] = max_tokens
    body = {"request": request, **fields}
    options = {} if token is None else {"token": token}
    return gw.post("/explain", json=body, **options)


def test_explain_simple_prompt_degrades_and_explains(gw: AdminGateway) -> None:
    upstream_calls = sum(gw.mock.requests_by_path.values())
    decisions_before = len(gw.served.journal.list_decisions(1000))  # type: ignore[union-attr]
    response = _explain(gw, project="acme", principal="alice")
    assert response.status_code == 200
    data = response.json()
    assert data["requested_model"] == "gpt-4o"
    assert data["default_model"] == "gpt-4o"
    assert data["actual_model"] == "gpt-4o-mini"
    assert data["recommended_model"] == "gpt-4o-mini"
    assert data["routing_action"] == "degrade"
    assert "simple_prompt_cheaper_model" in data["reason_codes"]
    assert data["explanation"]
    assert data["scopes"]["project"] == "acme"
    # Complexity with each term.
    terms = {term["name"] for term in data["complexity"]["terms"]}
    assert {"length", "reasoning_cues", "code"} <= terms
    # Every candidate, priced (explain prices them all), and which one won.
    candidates = {c["model"]: c for c in data["candidates"]}
    assert set(candidates) == {"gpt-4o-mini", "gpt-4o", "claude-opus-4"}
    assert candidates["gpt-4o-mini"]["chosen"] is True
    assert candidates["gpt-4o"]["chosen"] is False
    assert all(c["estimate"]["upper_usd"] for c in candidates.values())
    assert all(c["reason"] for c in candidates.values())
    # Budget evaluations with consumed / remaining / limit / outcome.
    evaluations = {e["policy_id"]: e for e in data["budget_evaluations"]}
    assert set(evaluations) == {"principal-daily-usd", "acme-monthly-tokens"}
    daily = evaluations["principal-daily-usd"]
    assert daily["member"] == "alice"
    assert daily["metric"] == "usd"
    assert daily["hard_limit"] == "5"
    assert daily["soft_limit"] == "1"
    assert daily["status"] == "ok"
    assert daily["outcome"] == "within budget"
    assert daily["window"]["start"] < daily["window"]["end"]
    for field in ("consumed", "remaining", "request_amount"):
        assert daily[field] is not None
    # The estimate: token and cost bounds.
    estimate = data["estimate"]
    assert estimate["input_tokens_lower"] <= estimate["input_tokens_upper"]
    assert float(estimate["lower_usd"]) <= float(estimate["upper_usd"])
    # Nothing called, reserved or journaled.
    assert sum(gw.mock.requests_by_path.values()) == upstream_calls
    assert gw.served.ledger.open_reservations == 0
    gw.flush()
    assert len(gw.served.journal.list_decisions(1000)) == decisions_before  # type: ignore[union-attr]


def test_explain_complex_prompt_escalates(gw: AdminGateway) -> None:
    context = "The cache layer sits between the API and the database. " * 130
    data = _explain(
        gw, HARD + "\n" + context, max_tokens=1500, project="acme", principal="alice"
    ).json()
    assert data["complexity"]["score"] > 0.75, data["complexity"]
    assert "complex_prompt_escalated" in data["reason_codes"]
    assert data["routing_action"] == "escalate"
    assert data["actual_model"] == "claude-opus-4"


def test_explain_reflects_consumption(gw: AdminGateway) -> None:
    assert gw.chat("bob", "Say hello.").status_code == 200
    data = _explain(gw, principal="bob").json()
    [daily] = [e for e in data["budget_evaluations"] if e["policy_id"] == "principal-daily-usd"]
    assert float(daily["consumed"]) > 0
    assert float(daily["remaining"]) < 5


def test_explain_anthropic_body_and_task_class(gw: AdminGateway) -> None:
    body = {
        "request": {
            "model": "claude-opus-4",
            "max_tokens": 200,
            "messages": [{"role": "user", "content": "Summarise: it rained."}],
        },
        "protocol": "anthropic",
        "task_class": "auxiliary_summary",
        "principal": "alice",
    }
    response = gw.post("/explain", json=body)
    assert response.status_code == 200
    data = response.json()
    assert data["task_class"] == "auxiliary_summary"
    assert data["estimate"]["output_tokens_upper"] == 200
    assert data["actual_model"] == "gpt-4o-mini"


def test_explain_routing_mode_can_only_tighten(gw: AdminGateway) -> None:
    data = _explain(gw, routing_mode="suggest").json()
    assert data["mode"] == "enforced"  # relaxing needs the override permission


def test_non_admin_key_explains_as_itself(gw: AdminGateway) -> None:
    response = _explain(gw, token=gw.secrets["alice"], agent="indexer")
    assert response.status_code == 200
    scopes = response.json()["scopes"]
    assert scopes == {
        "project": "acme",
        "principal": "alice",
        "api_key": "alice",
        "agent": "project:acme/indexer",  # within its tenant
        "session": None,
    }
    refused = _explain(gw, token=gw.secrets["alice"], project="globex")
    assert refused.status_code == 403
    assert refused.json()["error"]["param"] == "body.project"
    assert _explain(gw, token=gw.secrets["alice"], principal="bob").status_code == 403
    assert _explain(gw, token=gw.secrets["alice"], project="acme").status_code == 200


def test_explain_bad_input(gw: AdminGateway) -> None:
    missing = gw.post("/explain", json={"request": {"model": "gpt-4o"}})
    assert missing.status_code == 422
    assert missing.json()["error"]["param"] == "body.request.messages"
    messages = [{"role": "user", "content": "x"}]
    no_model = gw.post("/explain", json={"request": {"model": "nope", "messages": messages}})
    assert no_model.status_code == 404
    assert no_model.json()["error"]["code"] == "model_not_found"
    assert no_model.json()["error"]["param"] == "body.request.model"
    extra = _explain(gw, surprise=1)
    assert extra.status_code == 422
    assert extra.json()["error"]["param"] == "body.surprise"
    bad_class = _explain(gw, task_class="everything")
    assert bad_class.status_code == 422
    assert bad_class.json()["error"]["param"] == "body.task_class"
    bad_protocol = _explain(gw, protocol="grpc")
    assert bad_protocol.status_code == 422
    assert gw.post("/explain", json=[1, 2]).status_code == 422
    assert _explain(gw, token="wrong").status_code == 401


def test_explain_says_which_output_limit_the_provider_would_be_sent(gw: AdminGateway) -> None:
    data = _explain(gw, project="acme", principal="alice").json()
    assert "output_ceiling_applied" in data["reason_codes"]
    assert any("limit of 16384 output tokens" in s for s in data["explanation"])


def test_explain_takes_a_responses_body_and_says_it_is_stateful(gw: AdminGateway) -> None:
    request = {"model": "gpt-4o", "input": "Say hi.", "previous_response_id": "resp_1"}
    response = gw.post("/explain", json={"request": request, "protocol": "responses"})
    assert response.status_code == 200
    data = response.json()
    assert "stateful_passthrough" in data["reason_codes"]
    assert any("previous_response_id" in sentence for sentence in data["explanation"])
    chosen = next(c for c in data["candidates"] if c["chosen"])
    assert all(c["provider"] == chosen["provider"] for c in data["candidates"] if c["eligible"])
    bad = gw.post("/explain", json={"request": {"model": "gpt-4o"}, "protocol": "responses"})
    assert bad.status_code == 422
    assert bad.json()["error"]["param"] == "body.request.input"
