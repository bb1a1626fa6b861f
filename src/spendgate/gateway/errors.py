"""The gateway's error contract (docs/admin-api.md and the README list it).

OpenAI routes answer with the OpenAI envelope ``{"error": {message, type, code, param}}``;
the Anthropic route with Anthropic's ``{"type": "error", "error": {type, message}}``. Both
carry ``decision_id``, ``policy_id`` and ``approval_id`` where relevant. A budget block is a
429 with ``x-should-retry: false`` so the official SDKs do not retry it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from spendgate.domain.requests import Protocol
from spendgate.domain.translate import anthropic_error_type

__all__ = [
    "GatewayError",
    "approval_required",
    "bad_request",
    "body_too_large",
    "budget_exceeded",
    "invalid_api_key",
    "ledger_unavailable",
    "model_not_allowed",
    "model_not_found",
    "model_unsuited",
    "upstream_error",
]


@dataclass(frozen=True, slots=True)
class GatewayError(Exception):
    status: int
    code: str
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    references: dict[str, str] = field(default_factory=dict)  # decision/policy/approval ids
    headers: tuple[tuple[str, str], ...] = ()

    def body(self, protocol: Protocol = Protocol.OPENAI) -> bytes:
        payload: dict[str, Any]
        if protocol is Protocol.ANTHROPIC:
            payload = {
                "type": "error",
                "error": {
                    "type": anthropic_error_type(self.status),
                    "message": self.message,
                    "code": self.code,
                    "param": self.param,
                },
            }
        else:
            payload = {
                "error": {
                    "message": self.message,
                    "type": self.type,
                    "code": self.code,
                    "param": self.param,
                }
            }
        payload["error"].update(self.references)
        payload.update(self.references)
        return orjson.dumps(payload)

    def with_approval(self, approval_id: str, outcome: str | None = None) -> GatewayError:
        """This refusal, naming the approval request behind it (and, after waiting for it,
        how that ended)."""
        message = self.message if outcome is None else f"{self.message} {outcome}"
        references = {**self.references, "approval_id": approval_id}
        return replace(self, message=message, references=references)

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers of the error response: its own, and the decision id when it has one (a
        refusal or an upstream failure is a decision as much as a 200 is)."""
        headers = [(name.encode(), value.encode()) for name, value in self.headers]
        decision_id = self.references.get("decision_id")
        if decision_id is not None:
            headers.append((b"x-spendgate-decision-id", decision_id.encode()))
        approval_id = self.references.get("approval_id")
        if approval_id is not None:
            headers.append((b"x-spendgate-approval-id", approval_id.encode()))
        return headers


def bad_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, "invalid_request", message, param=param)


def invalid_api_key() -> GatewayError:
    return GatewayError(
        401,
        "invalid_api_key",
        "Missing or invalid API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key'.",
        type="authentication_error",
    )


def model_not_found(model: str) -> GatewayError:
    return GatewayError(
        404, "model_not_found", f"The model {model!r} does not exist.", param="model"
    )


def model_not_allowed(model: str) -> GatewayError:
    return GatewayError(
        403,
        "model_not_allowed",
        f"This API key may not use the model {model!r}.",
        type="permission_error",
        param="model",
    )


def model_unsuited(message: str) -> GatewayError:
    """An embeddings request for a chat model, or the reverse."""
    return GatewayError(400, "model_not_supported", message, param="model")


def body_too_large(limit: int) -> GatewayError:
    return GatewayError(413, "request_too_large", f"The request body exceeds {limit} bytes.")


def budget_exceeded(message: str, decision_id: str, policy_id: str | None) -> GatewayError:
    references = {"decision_id": decision_id}
    if policy_id is not None:
        references["policy_id"] = policy_id
    return GatewayError(
        429,
        "budget_exceeded",
        message,
        type="budget_exceeded",
        references=references,
        headers=(("x-should-retry", "false"),),
    )


def approval_required(
    message: str, decision_id: str, policy_id: str | None, approval_id: str | None
) -> GatewayError:
    references = {"decision_id": decision_id}
    if policy_id is not None:
        references["policy_id"] = policy_id
    if approval_id is not None:
        references["approval_id"] = approval_id
    return GatewayError(
        403,
        "approval_required",
        message,
        type="permission_error",
        references=references,
        headers=(("x-should-retry", "false"),),
    )


def upstream_error(message: str, decision_id: str) -> GatewayError:
    return GatewayError(
        502,
        "upstream_error",
        message,
        type="api_error",
        references={"decision_id": decision_id},
    )


def ledger_unavailable(decision_id: str) -> GatewayError:
    """The shared ledger cannot be reached and ``ledger_failure`` is ``closed``: no budget can
    be checked, so nothing is admitted. Retryable: the SDKs retry a 503."""
    return GatewayError(
        503,
        "ledger_unavailable",
        "The budget ledger cannot be reached, so this request cannot be checked against its "
        "budgets; it was not sent. Retry shortly.",
        type="api_error",
        references={"decision_id": decision_id},
        headers=(("retry-after", "1"),),
    )
