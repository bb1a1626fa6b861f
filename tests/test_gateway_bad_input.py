"""Bad input end to end (issue 3, DESIGN.md §4): missing or invalid keys, malformed JSON, wrong
types, unknown or forbidden models, oversized bodies, bad ``x-spendgate-*`` headers, on both
the OpenAI and the Anthropic route. Each gets the contract's status and envelope (so the
official SDKs raise their matching exception), and none of them reaches the upstream, moves a
ledger counter or writes a decision — except a refused budget check, journaled as "refused",
and a request only its translation for the other protocol finds wrong (journaled, as a 400)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from gateway_support import (
    HELLO,
    Reply,
    Served,
    anthropic_client,
    counter,
    decisions,
    http,
    open_reservations,
    openai_client,
    serve_config,
)
from spendgate.config.schema import DEFAULT_MAX_BODY_BYTES
from spendgate.mock_upstream.runner import MockUpstreamThread

CONFIG = """
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
  - {{id: beta, kind: anthropic, base_url: "{mock}", api_key_env: BETA_KEY}}
models:
  - {{id: gpt-4o-mini, provider: alpha, capabilities: [json, vision, tools], cost_tier: low,
     max_output_tokens: 16384}}
  - {{id: gpt-4o, provider: alpha, capabilities: [json, vision, tools], cost_tier: medium,
     max_output_tokens: 16384}}
  - {{id: claude-sonnet-4, provider: beta, capabilities: [vision, tools], cost_tier: medium,
     max_output_tokens: 8192}}
routing: {{default_model: gpt-4o, mode: enforced, smart_routing: false, failover: false}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
  - {{id: rita, key_env: RITA_KEY, principal: rita, project: acme, models: [gpt-4o-mini]}}
  - {{id: bob, key_env: BOB_KEY, principal: bob, project: acme}}
budgets:
  - {{id: everything, scope: {{kind: global}}, metric: tokens, interval: daily,
     hard_limit: 100000000}}
  - {{id: bob-cap, scope: {{kind: principal, id: bob}}, metric: usd, interval: daily,
     hard_limit: 0.0001}}
"""
ENV = {
    "ALPHA_KEY": "sk-alpha-upstream-secret",
    "BETA_KEY": "sk-beta-upstream-secret",
    "ALICE_KEY": "sg-alice",
    "RITA_KEY": "sg-rita",
    "BOB_KEY": "sg-bob",
}
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
HUGE = "x" * DEFAULT_MAX_BODY_BYTES  # over the gateway's limit once JSON-encoded


@dataclass(frozen=True)
class Snapshot:
    """Everything a request could have recorded."""

    upstream_calls: int
    decisions: int
    settled: Decimal
    reserved: Decimal
    open_reservations: int


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0) as mock:
        yield mock


@pytest.fixture(scope="module")
def served(mock: MockUpstreamThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    database: Path = tmp_path_factory.mktemp("bad-input") / "journal.db"
    with serve_config(CONFIG.format(mock=mock.base_url), ENV, database=database) as served:
        yield served


def snapshot(served: Served, mock: MockUpstreamThread) -> Snapshot:
    state = counter(served, "everything", "global")
    return Snapshot(
        upstream_calls=mock.stats.total,
        decisions=len(decisions(served)),
        settled=state.settled,
        reserved=state.reserved,
        open_reservations=open_reservations(served),
    )


@pytest.fixture
def nothing_recorded(served: Served, mock: MockUpstreamThread) -> Iterator[None]:
    """The test's requests must leave no trace: no upstream call, counter or decision."""
    before = snapshot(served, mock)
    yield
    assert snapshot(served, mock) == before


def post(served: Served, path: str, *, key: str | None = "sg-alice", **options: Any) -> Reply:
    headers: dict[str, str] = options.pop("headers", {})
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    headers.setdefault("content-type", "application/json")
    return http("POST", served.url + path, **options, **headers)


def openai_error(reply: Reply, status: int, code: str, param: str | None = None) -> None:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) >= {"message", "type", "code", "param"}
    assert error["code"] == code
    assert error["message"]
    if param is not None:
        assert error["param"] == param


def anthropic_error(reply: Reply, status: int, kind: str, param: str | None = None) -> None:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == kind
    assert body["error"]["message"]
    if param is not None:
        assert body["error"]["param"] == param


# -- the OpenAI route -------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_recorded")
def test_missing_and_invalid_keys_are_401(served: Served) -> None:
    missing = post(served, CHAT, key=None, json={"model": "gpt-4o", "messages": HELLO})
    openai_error(missing, 401, "invalid_api_key")
    assert missing.json()["error"]["type"] == "authentication_error"
    openai_error(post(served, CHAT, key="", json={}), 401, "invalid_api_key")
    with pytest.raises(openai.AuthenticationError) as invalid:
        openai_client(served, "sg-not-a-key").chat.completions.create(
            model="gpt-4o", messages=HELLO
        )
    assert invalid.value.code == "invalid_api_key"
    # The key is checked before the body is even read: a bad key with a bad body is a 401.
    openai_error(post(served, CHAT, key="sg-nope", content=b"{oops"), 401, "invalid_api_key")


@pytest.mark.usefixtures("nothing_recorded")
def test_malformed_json_is_400(served: Served) -> None:
    for body in (b"{not json", b"", b"\xff\xfe", b'{"model": "gpt-4o",'):
        openai_error(post(served, CHAT, content=body), 400, "invalid_request")
    reply = post(served, CHAT, content=b"[1, 2]")
    openai_error(reply, 400, "invalid_request")
    assert "object" in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HELLO}, "model"),
        ({"model": 4, "messages": HELLO}, "model"),
        ({"model": "gpt-4o", "messages": "hi"}, "messages"),
        ({"model": "gpt-4o", "messages": []}, "messages"),
        ({"model": "gpt-4o", "messages": ["hi"]}, "messages[0]"),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "gpt-4o", "messages": HELLO, "max_tokens": "ten"}, "max_tokens"),
        ({"model": "gpt-4o", "messages": HELLO, "max_tokens": -1}, "max_tokens"),
        ({"model": "gpt-4o", "messages": HELLO, "max_tokens": True}, "max_tokens"),
        ({"model": "gpt-4o", "messages": HELLO, "stream": "yes"}, "stream"),
        ({"model": "gpt-4o", "messages": HELLO, "n": 0}, "n"),
        ({"model": "gpt-4o", "messages": HELLO, "tools": {}}, "tools"),
        ({"model": "gpt-4o", "messages": HELLO, "response_format": "json"}, "response_format"),
        # Well-formed JSON of the wrong type, which reached code assuming an object (a 500).
        (
            {"model": "gpt-4o", "messages": HELLO, "stream": True, "stream_options": "x"},
            "stream_options",
        ),
        (
            {"model": "gpt-4o", "messages": HELLO, "stream": True, "stream_options": [1]},
            "stream_options",
        ),
        (
            {"model": "gpt-4o", "messages": HELLO, "stream_options": {"include_usage": "yes"}},
            "stream_options.include_usage",
        ),
    ],
)
@pytest.mark.usefixtures("nothing_recorded")
def test_wrong_types_are_400_naming_the_parameter(
    served: Served, body: dict[str, Any], param: str
) -> None:
    openai_error(post(served, CHAT, json=body), 400, "invalid_request", param)


USER = {"role": "user", "content": "Call the tool."}
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        # Messages a provider refuses: no content where the role needs it, an unknown role.
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "system", "content": None}, USER]}, "messages[0].content"),
        ({"messages": [USER, {"role": "assistant"}]}, "messages[1].content"),
        ({"messages": [USER, {"role": "tool", "content": "42"}]}, "messages[1].tool_call_id"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "", "content": "hi"}]}, "messages[0].role"),
        # Sampling parameters of the wrong type or out of range.
        ({"messages": HELLO, "temperature": "hot"}, "temperature"),
        ({"messages": HELLO, "temperature": 2.5}, "temperature"),
        ({"messages": HELLO, "temperature": True}, "temperature"),
        ({"messages": HELLO, "top_p": 1.01}, "top_p"),
        ({"messages": HELLO, "presence_penalty": -2.5}, "presence_penalty"),
        ({"messages": HELLO, "frequency_penalty": [1]}, "frequency_penalty"),
        ({"messages": HELLO, "n": 129}, "n"),
        ({"messages": HELLO, "seed": 1.5}, "seed"),
        ({"messages": HELLO, "top_logprobs": 21}, "top_logprobs"),
        ({"messages": HELLO, "logprobs": "yes"}, "logprobs"),
        ({"messages": HELLO, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"messages": HELLO, "stop": 7}, "stop"),
    ],
)
@pytest.mark.usefixtures("nothing_recorded")
def test_bodies_a_provider_would_refuse_are_400_before_reserving(
    served: Served, body: dict[str, Any], param: str
) -> None:
    openai_error(
        post(served, CHAT, json={"model": "gpt-4o", **body}), 400, "invalid_request", param
    )


def test_what_providers_accept_at_the_edge_still_passes(served: Served) -> None:
    client = openai_client(served, "sg-alice")
    # An assistant message that only calls a tool has no content; bounds are inclusive.
    reply = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            USER,
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ],
        temperature=2,
        top_p=0,
        presence_penalty=-2,
        stop="END",
        max_tokens=20,
    )
    assert reply.choices[0].message.content
    # A final assistant message may be empty on Anthropic's route (a prefill).
    message = anthropic_client(served, "sg-alice").messages.create(
        model="claude-sonnet-4",
        max_tokens=20,
        messages=[USER, {"role": "assistant", "content": ""}],
        extra_body={"temperature": 1},
    )
    assert message.content


@pytest.mark.usefixtures("nothing_recorded")
def test_wrong_types_through_the_sdk_raise_bad_request(served: Served) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        openai_client(served, "sg-alice").chat.completions.create(
            model="gpt-4o",
            messages=HELLO,
            max_tokens="many",  # wrong on purpose
        )
    assert bad.value.param == "max_tokens"
    with pytest.raises(openai.BadRequestError) as out_of_range:
        openai_client(served, "sg-alice").chat.completions.create(
            model="gpt-4o", messages=HELLO, temperature=9
        )
    assert out_of_range.value.param == "temperature"


@pytest.mark.usefixtures("nothing_recorded")
def test_bad_spendgate_headers_are_400(served: Served) -> None:
    body = {"model": "gpt-4o", "messages": HELLO}
    for header, value in (
        ("x-spendgate-routing-mode", "off"),
        ("x-spendgate-task-class", "urgent"),
    ):
        reply = post(served, CHAT, json=body, headers={header: value})
        openai_error(reply, 400, "invalid_request", header)


@pytest.mark.usefixtures("nothing_recorded")
def test_unknown_and_forbidden_models(served: Served) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        openai_client(served, "sg-alice").chat.completions.create(model="gpt-99", messages=HELLO)
    assert unknown.value.code == "model_not_found"
    assert unknown.value.param == "model"
    with pytest.raises(openai.PermissionDeniedError) as forbidden:
        openai_client(served, "sg-rita").chat.completions.create(model="gpt-4o", messages=HELLO)
    assert forbidden.value.code == "model_not_allowed"
    assert {m.id for m in openai_client(served, "sg-rita").models.list()} == {"gpt-4o-mini"}


@pytest.mark.usefixtures("nothing_recorded")
def test_an_oversized_body_is_413(served: Served) -> None:
    with pytest.raises(openai.APIStatusError) as too_big:
        openai_client(served, "sg-alice").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": HUGE}]
        )
    assert too_big.value.status_code == 413
    assert too_big.value.code == "request_too_large"


def test_the_default_body_limit_allows_a_few_base64_images(served: Served) -> None:
    image = "data:image/png;base64," + "A" * (7 * 1024 * 1024)  # a 5 MB image, encoded
    parts = [{"type": "text", "text": "Compare these."}] + [
        {"type": "image_url", "image_url": {"url": image}} for _ in range(3)
    ]
    reply = openai_client(served, "sg-alice").chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": parts}], max_tokens=20
    )
    assert reply.choices[0].message.content


def test_the_body_limit_is_a_config_setting(
    mock: MockUpstreamThread, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = CONFIG.format(mock=mock.base_url) + "max_body_bytes: 4096\n"
    database = tmp_path_factory.mktemp("small-bodies") / "journal.db"
    with serve_config(config, ENV, database=database) as small:
        fits = [{"role": "user", "content": "x" * 3000}]
        assert (
            openai_client(small, "sg-alice")
            .chat.completions.create(model="gpt-4o", messages=fits, max_tokens=5)
            .choices
        )
        with pytest.raises(openai.APIStatusError) as too_big:
            openai_client(small, "sg-alice").chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x" * 5000}]
            )
        assert too_big.value.status_code == 413
        assert "4096 bytes" in too_big.value.message

        assert len(decisions(small)) == 1


@pytest.mark.usefixtures("nothing_recorded")
def test_unknown_routes_and_methods(served: Served) -> None:
    assert http("GET", served.url + "/v1/nope").status_code == 404
    wrong_method = http("GET", served.url + CHAT, authorization="Bearer sg-alice")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert http("GET", served.url + "/v1/models").status_code == 401


def test_a_refused_budget_is_journaled_as_refused_and_spends_nothing(
    served: Served, mock: MockUpstreamThread
) -> None:
    before = snapshot(served, mock)
    bob_before = counter(served, "bob-cap", "bob")
    with pytest.raises(openai.RateLimitError) as refused:
        openai_client(served, "sg-bob", max_retries=3).chat.completions.create(
            model="gpt-4o", messages=HELLO, max_tokens=1000
        )
    assert refused.value.code == "budget_exceeded"
    after = snapshot(served, mock)
    assert after == Snapshot(
        before.upstream_calls,
        before.decisions + 1,  # one request, one decision: the SDK did not retry
        before.settled,
        before.reserved,
        before.open_reservations,
    )
    assert counter(served, "bob-cap", "bob") == bob_before
    [decision] = [
        d.decision for d in decisions(served) if d.decision.id == refused.value.body["decision_id"]
    ]
    assert decision.status == "refused"
    assert decision.usage is None


# -- the Anthropic route ----------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_recorded")
def test_anthropic_route_errors_use_anthropics_envelope_and_sdk_exceptions(
    served: Served,
) -> None:
    good = anthropic_client(served, "sg-alice")
    with pytest.raises(anthropic.AuthenticationError) as invalid:
        anthropic_client(served, "sg-not-a-key").messages.create(
            model="claude-sonnet-4", max_tokens=64, messages=HELLO
        )
    assert invalid.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError) as unknown:
        good.messages.create(model="claude-99", max_tokens=64, messages=HELLO)
    assert unknown.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.PermissionDeniedError):
        anthropic_client(served, "sg-rita").messages.create(
            model="claude-sonnet-4", max_tokens=64, messages=HELLO
        )
    with pytest.raises(anthropic.BadRequestError):
        good.messages.create(
            model="claude-sonnet-4",
            max_tokens=64,
            messages=[{"role": "user", "content": [{"type": "text"}]}],  # no "text"
        )
    with pytest.raises(anthropic.RequestTooLargeError):
        good.messages.create(
            model="claude-sonnet-4", max_tokens=64, messages=[{"role": "user", "content": HUGE}]
        )
    missing_key = http("POST", served.url + MESSAGES, json={"model": "claude-sonnet-4"})
    anthropic_error(missing_key, 401, "authentication_error")
    x_api_key = {"x-api-key": "sg-alice", "content-type": "application/json"}
    malformed = http("POST", served.url + MESSAGES, content=b"{oops", **x_api_key)
    anthropic_error(malformed, 400, "invalid_request_error")
    no_max_tokens = {"model": "claude-sonnet-4", "messages": HELLO}
    anthropic_error(
        http("POST", served.url + MESSAGES, json=no_max_tokens, **x_api_key),
        400,
        "invalid_request_error",
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "system", "content": "Be brief."}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": ""}, USER]}, "messages[0].content"),
        ({"messages": [USER, {"role": "assistant", "content": []}, USER]}, "messages[1].content"),
        ({"messages": HELLO, "temperature": 1.5}, "temperature"),
        ({"messages": HELLO, "top_p": "all"}, "top_p"),
        ({"messages": HELLO, "top_k": -1}, "top_k"),
        ({"messages": HELLO, "stop_sequences": "END"}, "stop_sequences"),
        ({"messages": HELLO, "max_tokens": 0}, "max_tokens"),
        ({"messages": "hi"}, "messages"),
    ],
)
@pytest.mark.usefixtures("nothing_recorded")
def test_anthropic_route_400s_name_the_parameter(
    served: Served, body: dict[str, Any], param: str
) -> None:
    request = {"model": "claude-sonnet-4", "max_tokens": 64, **body}
    anthropic_error(post(served, MESSAGES, json=request), 400, "invalid_request_error", param)


@pytest.mark.usefixtures("nothing_recorded")
def test_anthropic_sdk_sees_the_parameter_of_a_400(served: Served) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        anthropic_client(served, "sg-alice").messages.create(
            model="claude-sonnet-4", max_tokens=64, messages=HELLO, extra_body={"temperature": 3}
        )
    body = bad.value.body
    assert isinstance(body, dict)
    assert body["error"]["param"] == "temperature"


def test_anthropic_route_budget_block_is_a_rate_limit_error_not_retried(
    served: Served, mock: MockUpstreamThread
) -> None:
    before = snapshot(served, mock)
    with pytest.raises(anthropic.RateLimitError) as refused:
        anthropic_client(served, "sg-bob", max_retries=3).messages.create(
            model="claude-sonnet-4", max_tokens=1000, messages=HELLO
        )
    assert refused.value.response.headers["x-should-retry"] == "false"
    body = refused.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["policy_id"] == "bob-cap"
    after = snapshot(served, mock)
    assert after.decisions == before.decisions + 1
    assert (after.upstream_calls, after.settled, after.reserved) == (
        before.upstream_calls,
        before.settled,
        before.reserved,
    )


def test_good_requests_are_recorded_once(served: Served, mock: MockUpstreamThread) -> None:
    """The control: a valid request does reach the upstream, move the counter and journal."""
    before = snapshot(served, mock)
    openai_client(served, "sg-alice").chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=20
    )
    after = snapshot(served, mock)
    assert after.upstream_calls == before.upstream_calls + 1
    assert after.decisions == before.decisions + 1
    assert after.settled > before.settled
    assert after.open_reservations == 0


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (CHAT, {"model": "claude-sonnet-4", "messages": HELLO, "n": 2}, "n"),
        (
            CHAT,
            {"model": "claude-sonnet-4", "messages": HELLO, "tool_choice": {"function": 5}},
            "tool_choice.function.name",
        ),
        (
            MESSAGES,
            {"model": "gpt-4o", "max_tokens": 20, "messages": HELLO, "tool_choice": {"type": []}},
            "tool_choice",
        ),
    ],
)
def test_a_request_the_model_s_provider_cannot_express_is_400_and_journaled(
    served: Served, mock: MockUpstreamThread, path: str, body: dict[str, Any], param: str
) -> None:
    """Served by a provider of the other protocol, the request must be translated; what the
    translation cannot express (or reads with the wrong type) is the client's error, found
    after the decision was made: a 400 (was a 500), the decision journaled, nothing spent."""
    before = snapshot(served, mock)
    reply = post(served, path, json=body)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["message"]
    if path == CHAT:
        assert error["param"] == param
    decision_id = reply.json()["decision_id"]
    [decision] = [d.decision for d in decisions(served) if d.decision.id == decision_id]
    assert decision.status == "invalid_request"
    assert decision.usage is None
    after = snapshot(served, mock)
    assert after == replace(before, decisions=before.decisions + 1)
