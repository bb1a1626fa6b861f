"""The ``tracing`` section: parsed with its defaults, refused when wrong, reported when a
header's variable is unset; ``spendgate serve`` says where spans go (never a header's value,
never the endpoint's credentials) and exports the spans of its calls. And the pure parts of a
span: provider endpoints and error types."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway_support import HELLO, ONE_PROVIDER, ONE_PROVIDER_ENV
from serve_support import serve_process
from spendgate.config import ConfigError, parse_config
from spendgate.domain.pricing import Usage
from spendgate.domain.routing import RoutingDecision
from spendgate.governor import Governor
from spendgate.mock_upstream.runner import MockUpstreamThread
from spendgate.tracing.spans import CallOutcome, call_attributes, error_code, provider_endpoint
from trace_support import collector

BASE = ONE_PROVIDER.format(mock="http://127.0.0.1:9")
_GOVERNOR = Governor.from_config(parse_config(BASE, "spendgate.yaml"))
_PLANNED = _GOVERNOR.plan({"model": "gpt-4o-mini", "messages": HELLO})
_ENDPOINTS = {"alpha": provider_endpoint("openai", "http://127.0.0.1:9/v1/chat/completions")}


def _parse(tracing: str) -> object:
    return parse_config(BASE + tracing, "spendgate.yaml")


def test_tracing_is_off_unless_configured() -> None:
    assert parse_config(BASE, "spendgate.yaml").tracing is None
    assert parse_config(BASE + "tracing:\n", "spendgate.yaml").tracing is None


def test_the_section_has_defaults_and_reads_header_values_from_the_environment() -> None:
    config = parse_config(
        BASE
        + "tracing:\n  otlp_endpoint: http://127.0.0.1:4318/v1/traces\n"
        + "  headers: {X-Dataset: prod}\n  headers_env: {Authorization: OTLP_AUTH}\n",
        "spendgate.yaml",
    )
    spec = config.tracing
    assert spec is not None
    assert spec.service_name == "spendgate"
    assert spec.sample_ratio == 1.0
    assert spec.timeout_s == 10.0
    assert spec.export_headers({"OTLP_AUTH": "Bearer t0k"}) == {
        "x-dataset": "prod",
        "authorization": "Bearer t0k",
    }
    assert spec.export_headers({}) == {"x-dataset": "prod"}  # unset: not sent
    problems = config.problems(ONE_PROVIDER_ENV)
    assert any("tracing.headers_env authorization" in p and "OTLP_AUTH" in p for p in problems)
    assert not any("tracing" in p for p in config.problems({**ONE_PROVIDER_ENV, "OTLP_AUTH": "x"}))


@pytest.mark.parametrize(
    ("tracing", "where"),
    [
        ("{otlp_endpoint: 'localhost:4318'}", "otlp_endpoint"),
        ("{otlp_endpoint: 'http://c:4318/v1/traces', sample_ratio: 1.5}", "sample_ratio"),
        ("{otlp_endpoint: 'http://c:4318/v1/traces', sample_ratio: -0.1}", "sample_ratio"),
        ("{otlp_endpoint: 'http://c:4318/v1/traces', timeout_s: 0}", "timeout_s"),
        ("{otlp_endpoint: 'http://c:4318/v1/traces', batch_size: 10, max_queue: 5}", "batch_size"),
        ("{otlp_endpoint: 'http://c:4318/v1/traces', headers_env: {a: 'not a var'}}", "headers"),
        ("{otlp_endpoint: 'http://c:4318/v1/traces', exporter: grpc}", "exporter"),
        ("{sample_ratio: 0.5}", "otlp_endpoint"),
    ],
)
def test_a_wrong_section_is_refused_naming_the_field(tracing: str, where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        _parse(f"tracing: {tracing}\n")


def test_provider_endpoints_name_the_provider_and_its_host_and_port() -> None:
    openai = provider_endpoint("openai", "https://api.openai.com/v1/chat/completions")
    assert (openai.name, openai.address, openai.port) == ("openai", "api.openai.com", 443)
    local = provider_endpoint("anthropic", "http://127.0.0.1:8080/v1/messages")
    assert (local.name, local.address, local.port) == ("anthropic", "127.0.0.1", 8080)
    assert provider_endpoint("azure", "https://x.openai.azure.com/o").name == "azure.ai.openai"
    assert provider_endpoint("gemini", "https://g.googleapis.com/v1").name == "gcp.gemini"


def test_the_error_type_is_the_gateways_error_code_in_either_envelope() -> None:
    decision: RoutingDecision = _PLANNED

    def outcome(status: int | None, body: bytes | None, ended: str | None) -> CallOutcome:
        return CallOutcome("/v1/messages", replace(decision, status=ended), None, status, body)

    anthropic_body = b'{"type":"error","error":{"type":"rate_limit_error","code":"rate_limited"}}'
    assert error_code(outcome(429, anthropic_body, "refused")) == "rate_limited"
    assert error_code(outcome(502, b'{"error":{"code":"upstream_error"}}', None)) == (
        "upstream_error"
    )
    assert error_code(outcome(500, b"Internal Server Error", None)) == "500"
    assert error_code(outcome(200, None, "ok")) is None
    assert error_code(outcome(200, None, "client_disconnected")) == "client_disconnected"
    assert error_code(outcome(None, None, "gateway_error")) == "gateway_error"


def test_serve_says_where_spans_go_without_secrets_and_exports_them(tmp_path: Path) -> None:
    with MockUpstreamThread(latency_ms=0) as mock, collector() as stub:
        endpoint = stub.url.replace("http://", "http://otlpuser:otlp-pass@")
        config = ONE_PROVIDER.format(mock=mock.base_url) + (
            f"tracing: {{otlp_endpoint: '{endpoint}', sample_ratio: 0.25, "
            "headers_env: {x-otlp-token: OTLP_AUTH}, export_every_s: 0.05}\n"
        )
        env = {**ONE_PROVIDER_ENV, "OTLP_AUTH": "Bearer otlp-secret-token"}
        with serve_process(tmp_path, config, env) as running:
            log = running.wait_for("tracing")
            assert (
                f"tracing on, OTLP/HTTP to {stub.url}, service spendgate, sampling 25%, "
                "headers: x-otlp-token from OTLP_AUTH provider"
            ) in " ".join(log.split())
            for secret in ("otlp-secret-token", "otlp-pass"):
                assert secret not in log
            sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            reply = httpx.post(
                running.url + "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": HELLO},
                headers={"authorization": "Bearer sg-alice", "traceparent": sampled},
                timeout=30,
            )
            assert reply.status_code == 200
            (span,) = stub.wait_for(1)
        assert span.attributes["spendgate.decision_id"] == reply.headers["x-spendgate-decision-id"]
        assert stub.headers[0]["x-otlp-token"] == "Bearer otlp-secret-token"


@given(
    tokens=st.tuples(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9)),
    cost=st.one_of(st.none(), st.decimals(0, 10**6, places=12, allow_nan=False)),
    status=st.sampled_from(["ok", "refused", "upstream_error", "client_disconnected", None]),
    http_status=st.one_of(st.none(), st.sampled_from([200, 403, 429, 499, 502])),
    max_tokens=st.one_of(st.none(), st.integers(1, 10**6)),
    settled=st.booleans(),
)
def test_span_attributes_are_valid_and_say_what_the_decision_says(
    tokens: tuple[int, int, int],
    cost: Decimal | None,
    status: str | None,
    http_status: int | None,
    max_tokens: int | None,
    settled: bool,
) -> None:
    usage = Usage(*tokens) if settled else None
    decision = replace(_PLANNED, usage=usage, actual_cost_usd=cost, status=status)
    outcome = CallOutcome("/v1/chat/completions", decision, max_tokens, http_status, None)
    attributes = call_attributes(outcome, _ENDPOINTS)
    for value in attributes.values():  # what OpenTelemetry accepts: no None, flat values
        assert isinstance(value, str | bool | int | float) or (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        )
    assert attributes["spendgate.decision_id"] == decision.id
    assert ("gen_ai.request.max_tokens" in attributes) == (max_tokens is not None)
    assert ("server.address" in attributes) == (decision.provider is not None)
    if usage is None:
        assert "gen_ai.usage.input_tokens" not in attributes
        assert "spendgate.cost_usd" not in attributes
        assert "gen_ai.response.model" not in attributes
    else:
        assert attributes["gen_ai.usage.input_tokens"] == usage.input_tokens
        assert attributes["gen_ai.usage.output_tokens"] == usage.output_tokens
        assert attributes["spendgate.unpriced"] is (cost is None)
        if cost is not None:  # a double within a part in 10^15 of the Decimal
            assert abs(Decimal(str(attributes["spendgate.cost_usd"])) - cost) <= cost * Decimal(
                "1e-15"
            )
    error = attributes.get("error.type")
    if http_status is not None and http_status >= 400:
        assert error == str(http_status)  # no body: the status
    elif status not in (None, "ok"):
        assert error == status
    else:
        assert error is None
