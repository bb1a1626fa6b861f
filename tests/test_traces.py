"""OpenTelemetry export end to end: a served gateway, driven by the official openai and
anthropic SDKs, sends one span per proxied call over OTLP/HTTP to a local collector stub
(``trace_support``), with the GenAI attributes and spendgate's decision on it; refused and
failed calls included, a caller's ``traceparent`` joined, sampling honoured, and a collector
that is down never felt by a request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import anthropic
import openai
import pytest

from gateway_support import (
    HELLO,
    ONE_PROVIDER,
    ONE_PROVIDER_ENV,
    Served,
    anthropic_client,
    eventually,
    http,
    openai_client,
    serve_config,
    stored,
)
from serve_support import free_port
from spendgate.mock_upstream.runner import MockUpstreamThread
from trace_support import SPAN_KIND_CLIENT, STATUS_ERROR, Collector, collector

# ONE_PROVIDER ends with its keys: two more keys continue that list, then budgets and tracing.
CONFIG = (
    ONE_PROVIDER
    + """\
  - {{id: bob, key_env: BOB_KEY, principal: bob, project: frugal}}
  - {{id: carol, key_env: CAROL_KEY, principal: carol, project: gated}}
budgets:
  - {{id: frugal-daily, scope: {{kind: project, id: frugal}}, metric: usd, interval: daily,
     hard_limit: 0.000001}}
  - {{id: gated-daily, scope: {{kind: project, id: gated}}, metric: usd, interval: daily,
     hard_limit: 0.000001, hard_action: require_approval}}
tracing: {{otlp_endpoint: "{endpoint}", export_every_s: 0.05, timeout_s: 1{more}}}
"""
)
ENV = {
    **ONE_PROVIDER_ENV,
    "BOB_KEY": "sg-bob",
    "CAROL_KEY": "sg-carol",
    "OTLP_TOKEN": "otlp-secret-token",
}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _config(mock: MockUpstreamThread, endpoint: str, tracing: str = "") -> str:
    return CONFIG.format(
        mock=mock.base_url, endpoint=endpoint, more=f", {tracing}" if tracing else ""
    )


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0) as upstream:
        yield upstream


@pytest.fixture
def stub() -> Iterator[Collector]:
    with collector() as running:
        yield running


@pytest.fixture
def served(mock: MockUpstreamThread, stub: Collector, tmp_path: Path) -> Iterator[Served]:
    config = _config(mock, stub.url, "headers_env: {authorization: OTLP_TOKEN}")
    with serve_config(config, ENV, database=tmp_path / "journal.db") as running:
        yield running
    mock.options.forced_status = None


def test_a_chat_call_has_one_client_span_with_the_genai_attributes(
    served: Served, stub: Collector, mock: MockUpstreamThread
) -> None:
    raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=50
    )
    decision_id = raw.headers["x-spendgate-decision-id"]
    span = stub.span_of(decision_id)
    journaled = stored(served, decision_id).decision
    assert journaled.usage is not None
    assert journaled.actual_cost_usd is not None
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == SPAN_KIND_CLIENT
    assert span.parent_span_id == ""  # no caller trace: a root span
    assert span.status_code != STATUS_ERROR
    assert span.start_ns < span.end_ns
    attributes = span.attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.request.max_tokens"] == 50
    assert attributes["gen_ai.usage.input_tokens"] == journaled.usage.input_tokens
    assert attributes["gen_ai.usage.output_tokens"] == journaled.usage.output_tokens
    assert attributes["spendgate.cost_usd"] == float(journaled.actual_cost_usd)
    assert attributes["spendgate.cost_usd"] > 0
    assert attributes["spendgate.routing_action"] == raw.headers["x-spendgate-routing-action"]
    assert attributes["spendgate.budget_status"] == raw.headers["x-spendgate-budget-status"]
    assert attributes["spendgate.routing_mode"] == "enforced"
    assert attributes["spendgate.estimated_cost_usd_upper"] == float(
        raw.headers["x-spendgate-estimated-cost-usd"]
    )
    assert attributes["spendgate.reason_codes"] == list(journaled.reason_codes)
    assert attributes["spendgate.project"] == "acme"
    assert attributes["spendgate.principal"] == "alice"
    assert attributes["spendgate.api_key_id"] == "alice"
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == mock.port
    assert "error.type" not in attributes
    assert span.resource["service.name"] == "spendgate"
    # The secret header went to the collector, and never into a span.
    assert stub.headers[-1]["authorization"] == "otlp-secret-token"
    assert "otlp-secret-token" not in repr(stub.spans())
    assert "sg-alice" not in repr(stub.spans())
    assert len([s for s in stub.spans() if s.trace_id == span.trace_id]) == 1


def test_an_anthropic_messages_call_is_a_chat_span_too(served: Served, stub: Collector) -> None:
    raw = anthropic_client(served, "sg-alice").messages.with_raw_response.create(
        model="gpt-4o-mini", max_tokens=40, messages=HELLO
    )
    message = raw.parse()
    span = stub.span_of(raw.headers["x-spendgate-decision-id"])
    assert span.name == "chat gpt-4o-mini"
    assert span.attributes["gen_ai.operation.name"] == "chat"
    assert span.attributes["gen_ai.request.max_tokens"] == 40
    assert span.attributes["gen_ai.usage.input_tokens"] == message.usage.input_tokens
    assert span.attributes["gen_ai.usage.output_tokens"] == message.usage.output_tokens


def test_a_blocked_call_has_a_span_saying_why(served: Served, stub: Collector) -> None:
    with pytest.raises(openai.RateLimitError) as refused:
        openai_client(served, "sg-bob").chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, max_tokens=50
        )
    decision_id = refused.value.response.headers["x-spendgate-decision-id"]
    span = stub.span_of(decision_id)
    assert span.status_code == STATUS_ERROR
    attributes = span.attributes
    assert attributes["error.type"] == "budget_exceeded"
    assert attributes["spendgate.routing_action"] == "block"
    assert attributes["spendgate.budget_status"] == "blocked"
    assert attributes["spendgate.status"] == "refused"
    assert attributes["spendgate.http_status"] == 429
    assert attributes["spendgate.project"] == "frugal"
    assert "budget_blocked" in attributes["spendgate.reason_codes"]
    # No call was made: nothing answered, nothing used, no upstream.
    for absent in ("gen_ai.response.model", "gen_ai.usage.input_tokens", "server.address"):
        assert absent not in attributes
    assert stored(served, decision_id).decision.status == "refused"


def test_a_failed_upstream_has_a_span_with_its_error_type(
    served: Served, stub: Collector, mock: MockUpstreamThread
) -> None:
    mock.options.forced_status = 500
    with pytest.raises(openai.APIStatusError) as failed:
        openai_client(served, "sg-alice").chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, max_tokens=50
        )
    assert failed.value.status_code == 502
    decision_id = failed.value.response.headers["x-spendgate-decision-id"]
    span = stub.span_of(decision_id)
    assert span.status_code == STATUS_ERROR
    assert span.attributes["error.type"] == "upstream_error"
    assert span.attributes["spendgate.status"] == "upstream_error"
    assert span.attributes["server.address"] == "127.0.0.1"  # it was called
    assert "gen_ai.usage.input_tokens" not in span.attributes  # and billed nothing
    assert span.attributes["spendgate.failover_attempts"] == 1
    assert span.events == [
        (
            "spendgate.upstream_attempt",
            {
                "gen_ai.request.model": "gpt-4o-mini",
                "spendgate.provider": "alpha",
                "spendgate.outcome": "server_error",
                "spendgate.may_have_billed": False,
                "spendgate.decision_id": decision_id,
            },
        )
    ]


def test_a_callers_traceparent_makes_the_span_join_its_trace(
    served: Served, stub: Collector
) -> None:
    raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, extra_headers={"traceparent": TRACEPARENT}
    )
    span = stub.span_of(raw.headers["x-spendgate-decision-id"])
    _version, trace_id, parent_id, _flags = TRACEPARENT.split("-")
    assert span.trace_id == trace_id
    assert span.parent_span_id == parent_id
    assert span.span_id != parent_id


def test_a_malformed_traceparent_starts_a_trace_of_its_own(served: Served, stub: Collector) -> None:
    raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, extra_headers={"traceparent": "00-zz-bad-01"}
    )
    assert raw.parse().choices
    span = stub.span_of(raw.headers["x-spendgate-decision-id"])
    assert span.parent_span_id == ""
    assert len(span.trace_id) == 32


def test_a_streamed_calls_span_ends_after_the_stream_is_settled(
    served: Served, stub: Collector, mock: MockUpstreamThread
) -> None:
    mock.options.latency_ms = 200  # the stream lasts a while: the span must cover it
    try:
        stream = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HELLO, max_tokens=200, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
    finally:
        mock.options.latency_ms = 0
    assert text
    decision_id = stream.headers["x-spendgate-decision-id"]
    journaled = stored(served, decision_id).decision
    span = stub.span_of(decision_id)
    assert journaled.usage is not None
    assert journaled.latency_ms is not None
    # Recorded after settlement: the settled usage and cost are on it.
    assert span.attributes["gen_ai.usage.output_tokens"] == journaled.usage.output_tokens
    assert span.attributes["spendgate.cost_usd"] == float(journaled.actual_cost_usd or 0)
    assert span.attributes["spendgate.status"] == "ok"
    # It covers the whole upstream stream, not only the time to the first byte.
    assert span.end_ns - span.start_ns >= journaled.latency_ms * 1_000_000 * 0.99


def test_failover_attempts_are_events_of_the_one_span(
    mock: MockUpstreamThread, stub: Collector, tmp_path: Path
) -> None:
    with MockUpstreamThread(latency_ms=0, forced_status=503) as broken:
        config = f"""
providers:
  - {{id: alpha, kind: openai, base_url: "{broken.base_url}/v1", api_key_env: ALPHA_KEY}}
  - {{id: beta, kind: openai, base_url: "{mock.base_url}/v1", api_key_env: ALPHA_KEY}}
models:
  - {{id: gpt-4o-mini, provider: alpha, cost_tier: low, max_output_tokens: 16384}}
  - {{id: gpt-4o, provider: beta, cost_tier: medium, max_output_tokens: 16384}}
routing: {{default_model: gpt-4o-mini, mode: enforced, smart_routing: false, failover: true}}
keys:
  - {{id: alice, key_env: ALICE_KEY, principal: alice, project: acme}}
tracing: {{otlp_endpoint: "{stub.url}", export_every_s: 0.05}}
"""
        with serve_config(config, ENV, database=tmp_path / "journal.db") as served:
            raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=HELLO, max_tokens=50
            )
            decision_id = raw.headers["x-spendgate-decision-id"]
            span = stub.span_of(decision_id)
            journaled = stored(served, decision_id).decision
    assert span.name == "chat gpt-4o-mini"  # what the caller asked for
    assert span.attributes["gen_ai.response.model"] == "gpt-4o"  # what answered
    assert span.attributes["spendgate.routing_action"] == "failover"
    assert span.attributes["spendgate.failover_attempts"] == 2
    assert span.attributes["server.port"] == mock.port
    assert span.attributes["spendgate.cost_usd"] == float(journaled.actual_cost_usd or 0)
    assert [event[1]["spendgate.outcome"] for event in span.events] == ["server_error", "ok"]
    assert len(stub.spans()) == 1


def test_a_sample_ratio_of_zero_exports_only_what_callers_sampled(
    mock: MockUpstreamThread, stub: Collector, tmp_path: Path
) -> None:
    config = _config(mock, stub.url, "sample_ratio: 0")
    with serve_config(config, ENV) as served:
        sdk = openai_client(served, "sg-alice")
        for _ in range(3):
            sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        sampled = sdk.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HELLO, extra_headers={"traceparent": TRACEPARENT}
        )
    # Stopping the gateway exported whatever was queued: only the caller's sampled call.
    (span,) = stub.spans()
    assert span.attributes["spendgate.decision_id"] == sampled.headers["x-spendgate-decision-id"]


def test_a_collector_that_is_down_never_fails_a_request_and_is_logged_once(
    mock: MockUpstreamThread, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    port = free_port()  # nobody listens there yet
    config = _config(mock, f"http://127.0.0.1:{port}/v1/traces")
    caplog.set_level(logging.WARNING, logger="spendgate.tracing")
    with serve_config(config, ENV, configure_logging=False) as served:
        sdk = openai_client(served, "sg-alice")
        for _ in range(2):
            assert sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices

        def failed() -> int:
            metrics = http("GET", served.url + "/metrics").text
            line = next(x for x in metrics.splitlines() if x.startswith("spendgate_trace_spans_f"))
            return int(float(line.split()[-1]))

        assert eventually(lambda: failed() >= 1, timeout_s=10)
        assert sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices
        assert eventually(lambda: failed() >= 3, timeout_s=10)
        warnings = [r.getMessage() for r in caplog.records if r.name == "spendgate.tracing"]
        assert len(warnings) == 1, warnings
        assert f"127.0.0.1:{port}" in warnings[0]
        with collector(port) as stub:  # the collector comes back
            sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            stub.wait_for(1)
            assert eventually(
                lambda: len([r for r in caplog.records if r.name == "spendgate.tracing"]) == 2
            )
            metrics = http("GET", served.url + "/metrics").text
            assert "spendgate_trace_spans_exported_total 1.0" in metrics
    assert "takes spans again" in caplog.records[-1].getMessage()


def test_a_call_refused_before_any_decision_has_no_span(served: Served, stub: Collector) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai_client(served, "sg-nobody").chat.completions.create(
            model="gpt-4o-mini", messages=HELLO
        )
    raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO
    )
    stub.span_of(raw.headers["x-spendgate-decision-id"])
    # Spans leave in the order they ended: one of the refused call would have come first.
    assert len(stub.spans()) == 1


def test_the_anthropic_sdk_sees_a_blocked_call_as_usual(served: Served, stub: Collector) -> None:
    with pytest.raises(anthropic.RateLimitError):
        anthropic_client(served, "sg-bob").messages.create(
            model="gpt-4o-mini", max_tokens=40, messages=HELLO
        )
    (span,) = stub.wait_for(1)
    assert span.attributes["error.type"] == "budget_exceeded"


def test_a_call_needing_approval_has_a_span_saying_so(served: Served, stub: Collector) -> None:
    with pytest.raises(openai.PermissionDeniedError) as refused:
        openai_client(served, "sg-carol").chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, max_tokens=50
        )
    span = stub.span_of(refused.value.response.headers["x-spendgate-decision-id"])
    assert span.status_code == STATUS_ERROR
    assert span.attributes["error.type"] == "approval_required"
    assert span.attributes["spendgate.routing_action"] == "approval_required"
    assert span.attributes["spendgate.budget_status"] == "approval_required"
    assert span.attributes["spendgate.http_status"] == 403


def test_concurrent_calls_each_get_their_own_span(served: Served, stub: Collector) -> None:
    """Each request's decisions reach its own span (a context per request), never another's."""
    sdk = openai_client(served, "sg-alice")

    def call(index: int) -> tuple[str, str]:
        trace_id = f"{index + 1:032x}"
        raw = sdk.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "word " * (index + 1)}],
            max_tokens=10 + index,
            extra_headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        )
        return trace_id, raw.headers["x-spendgate-decision-id"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        calls = list(pool.map(call, range(40)))
    spans = {span.trace_id: span for span in stub.wait_for(len(calls))}
    assert len(spans) == len(calls)
    for index, (trace_id, decision_id) in enumerate(calls):
        span = spans[trace_id]
        assert span.attributes["spendgate.decision_id"] == decision_id
        assert span.attributes["gen_ai.request.max_tokens"] == 10 + index
        usage = stored(served, decision_id).decision.usage
        assert usage is not None
        assert span.attributes["gen_ai.usage.input_tokens"] == usage.input_tokens


def test_a_client_gone_mid_stream_has_a_span_saying_so(
    served: Served, stub: Collector, mock: MockUpstreamThread
) -> None:
    async def leave_after_first_event() -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                served.url + "/v1/chat/completions",
                json={
                    "model": "gpt-4o-mini",
                    "stream": True,
                    "messages": [{"role": "user", "content": "Tell a long story. " * 50}],
                    "max_tokens": 2000,
                },
                headers={"authorization": "Bearer sg-alice"},
            ) as response,
        ):
            decision_id = response.headers["x-spendgate-decision-id"]
            async for line in response.content:
                if line.startswith(b"data: {"):
                    break
            response.close()  # drops the connection mid-stream
            return decision_id

    mock.options.chunk_delay_ms = 10
    try:
        decision_id = asyncio.run(leave_after_first_event())
        span = stub.span_of(decision_id)
    finally:
        mock.options.chunk_delay_ms = 0
    assert span.attributes["error.type"] == "client_disconnected"
    assert span.attributes["spendgate.status"] == "client_disconnected"
    assert span.attributes["spendgate.http_status"] == 200  # the stream had started
    journaled = stored(served, decision_id).decision
    assert journaled.usage is not None
    assert span.attributes["gen_ai.usage.output_tokens"] == journaled.usage.output_tokens


def test_a_responses_api_call_is_a_chat_span_with_its_usage(
    served: Served, stub: Collector
) -> None:
    raw = openai_client(served, "sg-alice").responses.with_raw_response.create(
        model="gpt-4o-mini", input="Say hello to the budget team.", max_output_tokens=60
    )
    response = raw.parse()
    span = stub.span_of(raw.headers["x-spendgate-decision-id"])
    assert span.name == "chat gpt-4o-mini"
    assert span.attributes["gen_ai.operation.name"] == "chat"
    assert span.attributes["gen_ai.request.max_tokens"] == 60
    assert response.usage is not None
    assert span.attributes["gen_ai.usage.input_tokens"] == response.usage.input_tokens
    assert span.attributes["gen_ai.usage.output_tokens"] == response.usage.output_tokens
