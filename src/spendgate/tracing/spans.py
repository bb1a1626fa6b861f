"""What a traced call's span says: its name and attributes, by the OpenTelemetry GenAI
semantic conventions (``gen_ai.*``, ``server.*``, ``error.type``) and spendgate's own
(``spendgate.*``). Plain data in, plain data out: nothing of OpenTelemetry is imported."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final
from urllib.parse import urlsplit

import orjson

from spendgate.domain.routing import RoutingDecision, UpstreamAttempt
from spendgate.gateway.headers import budget_status

__all__ = [
    "AttributeValue",
    "CallOutcome",
    "ProviderEndpoint",
    "attempt_event",
    "call_attributes",
    "error_code",
    "operation_name",
    "provider_endpoint",
]

AttributeValue = str | bool | int | float | Sequence[str]

# The GenAI operation of each proxied route; a route not listed is a chat.
_OPERATIONS: Final = {
    "/v1/embeddings": "embeddings",
    "/v1/completions": "text_completion",
}
_CHAT: Final = "chat"

# gen_ai.provider.name's well-known values, by provider kind; other kinds name themselves.
_PROVIDER_NAMES: Final = {"azure": "azure.ai.openai", "gemini": "gcp.gemini"}
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def operation_name(route: str) -> str:
    return _OPERATIONS.get(route, _CHAT)


@dataclass(frozen=True, slots=True)
class ProviderEndpoint:
    """A provider's constant attributes: its GenAI name and the upstream's host and port."""

    name: str
    address: str | None
    port: int | None


def provider_endpoint(kind: str, url: str) -> ProviderEndpoint:
    """A provider of ``kind`` called at ``url``."""
    parts = urlsplit(url)
    port = parts.port if parts.port is not None else _DEFAULT_PORTS.get(parts.scheme)
    return ProviderEndpoint(_PROVIDER_NAMES.get(kind, kind), parts.hostname, port)


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """How one proxied call ended, as the gateway saw it."""

    route: str
    decision: RoutingDecision
    max_tokens: int | None  # what the client asked for (None: no limit sent)
    http_status: int | None  # None: nothing was answered (a cancelled request)
    error_body: bytes | None  # the error response's body (an error status only)


def error_code(outcome: CallOutcome) -> str | None:
    """``error.type``: the gateway's error code when it answered an error (both API
    envelopes carry ``error.code``), else the decision's status when it did not end well (a
    stream the upstream broke off, a client that went away), else none."""
    status = outcome.http_status
    if status is not None and status >= 400:
        return _body_code(outcome.error_body) or str(status)
    ended = outcome.decision.status
    return ended if ended not in (None, "ok") else None


def _body_code(body: bytes | None) -> str | None:
    if not body:
        return None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and code else None


def call_attributes(
    outcome: CallOutcome, providers: Mapping[str, ProviderEndpoint]
) -> dict[str, AttributeValue]:
    """The span's attributes. Money is a double: backends sum and chart numbers, and a
    double holds any cost to far below a micro-cent; the exact Decimal is in the journal,
    under ``spendgate.decision_id``."""
    decision = outcome.decision
    endpoint = providers.get(decision.target_provider)
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": operation_name(outcome.route),
        "gen_ai.request.model": decision.requested_model,
        "spendgate.decision_id": decision.id,
        "spendgate.routing_action": decision.routing_action.value,
        "spendgate.routing_mode": decision.mode.value,
        "spendgate.budget_status": budget_status(decision).value,
        "spendgate.reason_codes": list(decision.reason_codes),
        "spendgate.task_class": decision.task_class.value,
        "spendgate.target_model": decision.target_model,
        "spendgate.target_provider": decision.target_provider,
    }
    if endpoint is not None:
        # Required by the conventions: the provider the call was (or would have been) made to.
        attributes["gen_ai.provider.name"] = endpoint.name
        attributes["gen_ai.system"] = endpoint.name  # its older name, still read by many tools
    if decision.status is not None:
        attributes["spendgate.status"] = decision.status
    if outcome.http_status is not None:
        attributes["spendgate.http_status"] = outcome.http_status
    if outcome.max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = outcome.max_tokens
    called = decision.provider is not None  # not refused: the upstream was called
    if called and endpoint is not None and endpoint.address is not None:
        attributes["server.address"] = endpoint.address
        if endpoint.port is not None:
            attributes["server.port"] = endpoint.port
    usage = decision.usage
    if usage is not None:  # settled: the provider answered (or billed what it started)
        attributes["gen_ai.response.model"] = decision.target_model
        attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
        attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
        if usage.cached_input_tokens:
            attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cached_input_tokens
        _money(attributes, "spendgate.cost_usd", decision.actual_cost_usd)
        attributes["spendgate.unpriced"] = decision.actual_cost_usd is None
    _money(attributes, "spendgate.estimated_cost_usd_upper", decision.estimate.upper_usd)
    scopes = decision.scopes
    for name, value in (
        ("spendgate.project", scopes.project),
        ("spendgate.principal", scopes.principal),
        ("spendgate.api_key_id", scopes.api_key),
        ("spendgate.agent_id", scopes.agent),
        ("spendgate.session_id", scopes.session),
    ):
        if value is not None:
            attributes[name] = value
    if decision.attempts:
        attributes["spendgate.failover_attempts"] = len(decision.attempts)
    error = error_code(outcome)
    if error is not None:
        attributes["error.type"] = error
    return attributes


def attempt_event(attempt: UpstreamAttempt) -> dict[str, AttributeValue]:
    """The attributes of the span event ``spendgate.upstream_attempt`` (one per candidate
    tried or skipped while the call failed over)."""
    event: dict[str, AttributeValue] = {
        "gen_ai.request.model": attempt.model,
        "spendgate.provider": attempt.provider,
        "spendgate.outcome": attempt.outcome,
        "spendgate.may_have_billed": attempt.may_have_billed,
    }
    if attempt.decision_id is not None:
        event["spendgate.decision_id"] = attempt.decision_id
    _money(event, "spendgate.cost_usd", attempt.cost_usd)
    return event


def _money(attributes: dict[str, AttributeValue], name: str, amount: Decimal | None) -> None:
    if amount is not None:
        attributes[name] = float(amount)
