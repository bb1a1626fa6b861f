"""Rate limits through a served gateway (memory ledger), with the official SDKs as clients:
a flood of 200 concurrent requests admits no more than the bucket holds, the rest answered 429
``rate_limited`` with ``retry-after`` and ``x-ratelimit-*`` headers; the openai SDK waits and
retries until it fits; every routing mode enforces; token refunds at settle; ``*`` counts each
member apart; the models filter; Anthropic's envelope; config validation."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from gateway_support import (
    HELLO,
    Served,
    anthropic_client,
    http,
    inject_mock_headers,
    openai_client,
    serve_config,
)
from spendgate.config import ConfigError, parse_config
from spendgate.mock_upstream.runner import MockUpstreamThread

ALICE, BOB = "sg-alice-rl", "sg-bob-rl"
ENV = {"ALPHA_KEY": "sk-alpha", "ALICE_KEY": ALICE, "BOB_KEY": BOB}


def config(mock: str, limits: str, mode: str = "enforced") -> str:
    return f"""
providers:
  - {{id: alpha, kind: openai, base_url: "{mock}/v1", api_key_env: ALPHA_KEY}}
models:
  - {{id: gpt-4o-mini, provider: alpha, cost_tier: low, max_output_tokens: 16384}}
  - {{id: gpt-4o, provider: alpha, cost_tier: high, max_output_tokens: 16384}}
routing: {{default_model: gpt-4o-mini, mode: {mode}, smart_routing: false, failover: false}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
  - {{id: bob, key_env: BOB_KEY, principal: bob, project: beta}}
rate_limits:
{limits}
"""


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0) as upstream:
        yield upstream


def _served(mock: MockUpstreamThread, limits: str, mode: str = "enforced") -> Any:
    return serve_config(config(mock.openai_base_url.removesuffix("/v1"), limits, mode), ENV)


def _chat(served: Served, key: str, model: str = "gpt-4o-mini", **extra: Any) -> Any:
    return http(
        "POST",
        served.url + "/v1/chat/completions",
        json={"model": model, "messages": HELLO, "max_tokens": 16, **extra},
        authorization=f"Bearer {key}",
    )


def _assert_rate_limited(reply: Any, limit_id: str) -> None:
    assert reply.status_code == 429, reply.text
    error = reply.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["rate_limit_id"] == limit_id
    assert error["param"] is None
    wait_ms = int(reply.headers["retry-after-ms"])
    assert 0 < wait_ms <= 60_000
    assert int(reply.headers["retry-after"]) == -(-wait_ms // 1000)
    assert "x-should-retry" not in reply.headers  # the SDKs retry it


def test_a_flood_of_200_admits_no_more_than_the_bucket(mock: MockUpstreamThread) -> None:
    """Continuous refill: admitted = the limit, plus at most what refilled while it ran."""
    rpm = 30
    limits = f"  - {{id: per-key, scope: {{kind: api_key, id: '*'}}, requests_per_minute: {rpm}}}"
    with _served(mock, limits) as served:
        client = openai.AsyncOpenAI(base_url=served.url + "/v1", api_key=ALICE, max_retries=0)

        async def one() -> tuple[int, str | None, httpx.Headers]:
            try:
                raw = await client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=HELLO, max_tokens=8
                )
            except openai.RateLimitError as error:
                return 429, error.code, error.response.headers
            return 200, None, raw.headers

        async def flood() -> list[tuple[int, str | None, httpx.Headers]]:
            try:
                return list(await asyncio.gather(*(one() for _ in range(200))))
            finally:
                await client.close()

        started = time.monotonic()
        results = asyncio.run(flood())
        elapsed = time.monotonic() - started
        statuses = Counter(status for status, _, _ in results)
        refilled = int(rpm * elapsed / 60)
        assert rpm <= statuses[200] <= rpm + refilled, (statuses, elapsed)
        assert statuses[200] + statuses[429] == 200
        for status, code, headers in results:
            assert headers["x-ratelimit-limit-requests"] == str(rpm)
            assert "x-ratelimit-limit-tokens" not in headers  # no tokens limit applies
            if status == 429:
                assert code == "rate_limited"
                assert int(headers["retry-after-ms"]) <= 2000  # ~1 request's refill: 2 s
                assert headers["x-ratelimit-remaining-requests"] == "0"
        # Refused requests hold nothing; admitted ones settled.
        assert served.ledger.open_reservations == 0
        metrics = http("GET", served.url + "/metrics").text
        assert f'spendgate_rate_limited_total{{limit_id="per-key"}} {statuses[429]}.0' in metrics


def test_the_sdk_waits_retry_after_then_succeeds(mock: MockUpstreamThread) -> None:
    limits = "  - {id: tight, scope: {kind: project, id: acme}, requests_per_minute: 60}"
    with _served(mock, limits) as served:
        seen: list[int] = []
        hooks = {"response": [lambda response: seen.append(response.status_code)]}
        with httpx.Client(event_hooks=hooks) as http_client:
            client = openai_client(served, ALICE, max_retries=5, http_client=http_client)
            for _ in range(3):  # until the SDK met a 429 (the bucket refills meanwhile)
                while _chat(served, ALICE).status_code == 200:
                    pass  # drain the bucket
                seen.clear()
                started = time.monotonic()
                completion = client.chat.completions.create(
                    model="gpt-4o-mini", messages=HELLO, max_tokens=8
                )
                waited = time.monotonic() - started
                if seen[0] == 429:
                    break
            assert seen[0] == 429, seen
            assert seen[-1] == 200, seen
            assert completion.choices[0].message.content
            assert waited < 10  # about a second per retry (rpm 60), never a minute


@pytest.mark.parametrize("mode", ["dry_run", "suggest"])
def test_every_routing_mode_enforces(mock: MockUpstreamThread, mode: str) -> None:
    limits = "  - {id: two, scope: {kind: principal, id: alice}, requests_per_minute: 2}"
    with _served(mock, limits, mode) as served:
        assert [_chat(served, ALICE).status_code for _ in range(2)] == [200, 200]
        _assert_rate_limited(_chat(served, ALICE), "two")
        assert _chat(served, BOB).status_code == 200  # bob is another principal


def test_each_member_separately_and_the_models_filter(mock: MockUpstreamThread) -> None:
    limits = (
        "  - {id: per-project, scope: {kind: project, id: '*'}, requests_per_minute: 2,\n"
        "     models: [gpt-4o]}"
    )
    with _served(mock, limits) as served:
        assert [_chat(served, ALICE, "gpt-4o").status_code for _ in range(2)] == [200, 200]
        _assert_rate_limited(_chat(served, ALICE, "gpt-4o"), "per-project")
        # Another tenant's bucket is its own; another model is not limited at all.
        assert _chat(served, BOB, "gpt-4o").status_code == 200
        mini = _chat(served, ALICE, "gpt-4o-mini")
        assert mini.status_code == 200
        assert "x-ratelimit-limit-requests" not in mini.headers


def test_a_model_scope_limits_every_caller_of_it(mock: MockUpstreamThread) -> None:
    limits = "  - {id: gpt4o, scope: {kind: model, id: gpt-4o}, requests_per_minute: 1}"
    with _served(mock, limits) as served:
        assert _chat(served, ALICE, "gpt-4o").status_code == 200
        _assert_rate_limited(_chat(served, BOB, "gpt-4o"), "gpt4o")


def test_tokens_are_reserved_at_the_upper_bound_and_refunded_at_settle(
    mock: MockUpstreamThread,
) -> None:
    limits = "  - {id: tpm, scope: {kind: api_key, id: alice}, tokens_per_minute: 100000}"
    with _served(mock, limits) as served:
        first = _chat(served, ALICE, max_tokens=5000)
        assert first.status_code == 200
        used = first.json()["usage"]["total_tokens"]
        upper = 100_000 - int(first.headers["x-ratelimit-remaining-tokens"])
        assert upper > 5000 > used  # reserved at the worst case
        second = _chat(served, ALICE, max_tokens=5000)
        # The first request's unused tokens came back: only its actual use still counts.
        remaining = int(second.headers["x-ratelimit-remaining-tokens"])
        assert remaining >= 100_000 - used - upper - 1
        assert second.headers["x-ratelimit-limit-tokens"] == "100000"
        assert second.headers["x-ratelimit-reset-tokens"].endswith("s")


def test_a_request_that_can_never_fit_is_refused_without_retry(mock: MockUpstreamThread) -> None:
    limits = "  - {id: small, scope: {kind: api_key, id: alice}, tokens_per_minute: 1000}"
    with _served(mock, limits) as served:
        reply = _chat(served, ALICE, max_tokens=4000)
        assert reply.status_code == 429
        error = reply.json()["error"]
        assert error["code"] == "rate_limited"
        assert error["type"] == "tokens"
        assert "can never be admitted" in error["message"]
        assert reply.headers["x-should-retry"] == "false"
        assert "retry-after" not in reply.headers
        assert _chat(served, ALICE, max_tokens=100).status_code == 200


def test_anthropic_clients_get_their_envelope(mock: MockUpstreamThread) -> None:
    limits = "  - {id: one, scope: {kind: api_key, id: alice}, requests_per_minute: 1}"
    with _served(mock, limits) as served:
        client = anthropic_client(served, ALICE)
        client.messages.create(model="gpt-4o-mini", max_tokens=16, messages=HELLO)  # type: ignore[arg-type]
        with pytest.raises(anthropic.RateLimitError) as caught:
            client.messages.create(model="gpt-4o-mini", max_tokens=16, messages=HELLO)  # type: ignore[arg-type]
        body = caught.value.body
        assert isinstance(body, dict)
        assert body["type"] == "error"
        assert body["error"]["type"] == "rate_limit_error"
        assert body["rate_limit_id"] == "one"
        # One request a minute: the next fits once the bucket is empty again, ~60 s on.
        assert 50 <= int(caught.value.response.headers["retry-after"]) <= 60


def test_no_rate_limit_no_headers(mock: MockUpstreamThread) -> None:
    limits = "  []"
    with _served(mock, limits) as served:
        reply = _chat(served, ALICE)
        assert reply.status_code == 200
        assert not [name for name in reply.headers if name.startswith("x-ratelimit")]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{id: r, scope: {kind: api_key, id: a}}", "requests_per_minute, tokens_per_minute"),
        ("{id: r, scope: {kind: team, id: a}, requests_per_minute: 1}", "rate_limits[0]"),
        ("{id: r, scope: {kind: api_key, id: a}, requests_per_minute: 0}", "must be at least 1"),
        ("{id: r, scope: {kind: api_key, id: a}, requests_per_minute: 1.5}", "whole number"),
        ("{id: r, scope: {kind: api_key}, requests_per_minute: 1}", "scope.id"),
        ("{id: r, scope: {kind: api_key, id: a}, rpm: 1}", "rpm"),
        ("{id: r, scope: {kind: api_key, id: a}, requests_per_minute: 1, models: []}", "empty"),
        ("{id: r, scope: {kind: api_key, id: a}, requests_per_minute: 1, models: [nope]}", "nope"),
    ],
)
def test_config_errors_are_clear(entry: str, expected: str) -> None:
    text = config("http://127.0.0.1:9", f"  - {entry}")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "test.yaml")
    assert expected in str(caught.value)
    assert "rate_limits[0]" in str(caught.value)


def test_duplicate_ids_are_refused() -> None:
    one = "{id: r, scope: {kind: api_key, id: a}, requests_per_minute: 1}"
    text = config("http://127.0.0.1:9", f"  - {one}\n  - {one}")
    with pytest.raises(ConfigError, match=r"rate_limits\[1\].*duplicate id 'r'"):
        parse_config(text, "test.yaml")


FAILOVER = """
providers:
  - {{id: alpha, kind: openai, base_url: "{alpha}/v1", api_key_env: ALPHA_KEY}}
  - {{id: beta, kind: openai, base_url: "{beta}/v1", api_key_env: ALPHA_KEY}}
models:
  - {{id: gpt-4o-mini, provider: alpha, max_output_tokens: 16384}}
  - {{id: gpt-4o, provider: beta, max_output_tokens: 16384}}
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false, failover: true}}
keys: [{{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}]
rate_limits:
  - {{id: two, scope: {{kind: api_key, id: alice}}, requests_per_minute: 2,
     tokens_per_minute: 60000}}
"""


def test_a_failover_is_not_rate_limited_again_and_settles_the_hold() -> None:
    """The client's request is admitted once: its failover to another model carries the hold
    on (not refused by the request's own limit), and the tokens settle against it."""
    long_answers = MockUpstreamThread()
    inject_mock_headers(long_answers, {"x-mock-output-tokens": "3000"})
    with MockUpstreamThread() as alpha, long_answers as beta:
        alpha.options.forced_status = 500
        text = FAILOVER.format(
            alpha=alpha.openai_base_url.removesuffix("/v1"),
            beta=beta.openai_base_url.removesuffix("/v1"),
        )
        with serve_config(text, ENV) as served:
            started = time.monotonic()  # the bucket refills from the first reservation on
            first = _chat(served, ALICE, max_tokens=5000)
            assert first.status_code == 200, first.text
            assert first.headers["x-spendgate-model"] == "gpt-4o"
            assert first.headers["x-ratelimit-remaining-requests"] == "1"
            used = first.json()["usage"]["total_tokens"]
            assert used > 3000
            second = _chat(served, ALICE, max_tokens=5000)
            refill = int((time.monotonic() - started) * 1000) + 1  # 1 token per ms
            assert second.status_code == 200
            upper = 60_000 - int(first.headers["x-ratelimit-remaining-tokens"])
            # The first request's actual use is still counted (its hold was settled by the
            # fallback that served it, not dropped with the failed attempt), no more.
            remaining = int(second.headers["x-ratelimit-remaining-tokens"])
            assert 60_000 - used - upper - 1 <= remaining <= 60_000 - used - upper + refill
            _assert_rate_limited(_chat(served, ALICE), "two")
            assert served.ledger.open_reservations == 0
