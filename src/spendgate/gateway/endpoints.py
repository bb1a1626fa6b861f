"""What the proxy does differently for OpenAI's embeddings and legacy completions: both are
passed through untranslated, to providers that speak them (OpenAI-kind ones), and settled
from the provider's usage like chat (docs/endpoints.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spendgate.domain.models import Model
from spendgate.domain.pricing import Usage
from spendgate.domain.requests import ChatRequest, Protocol, RequestError
from spendgate.domain.translate.usage import usage_from_openai

__all__ = ["OPENAI_ONLY", "embeddings_usage", "openai_only_body", "unserved"]

# Request shapes that cannot be translated to another API: only a provider that speaks them
# may serve them.
OPENAI_ONLY = frozenset({Protocol.EMBEDDINGS, Protocol.COMPLETIONS})

_ROUTES = {Protocol.EMBEDDINGS: "/v1/embeddings", Protocol.COMPLETIONS: "/v1/completions"}


def unserved(model: Model, provider_kind: str, protocol: Protocol) -> RequestError:
    """Why ``model`` cannot serve a request of ``protocol``: its provider does not speak it."""
    return RequestError(
        f"The model {model.id!r} is served by provider {model.provider!r} (kind "
        f"{provider_kind}), which has no {_ROUTES[protocol]} API: only OpenAI-kind providers "
        "serve it, and it cannot be translated.",
        "model",
    )


def openai_only_body(
    payload: Mapping[str, Any], chat: ChatRequest, upstream_model: str, *, ceiling: int | None
) -> dict[str, Any]:
    """The body sent upstream: the client's, naming ``upstream_model`` (the id the chosen
    deployment knows the model by); a streamed legacy
    completion asks for the usage chunk (to settle exactly), and ``ceiling`` (enforced mode)
    holds ``max_tokens`` to what was reserved."""
    body = dict(payload)
    body["model"] = upstream_model
    if chat.protocol is Protocol.COMPLETIONS:
        if chat.stream:
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        if ceiling is not None and chat.choices:
            body["max_tokens"] = ceiling
    return body


def embeddings_usage(body: Mapping[str, Any]) -> Usage | None:
    """An embeddings answer's usage: ``prompt_tokens``, else ``total_tokens`` (all input)."""
    usage = usage_from_openai(body)
    if usage is not None:
        return usage
    reported = body.get("usage")
    total = reported.get("total_tokens") if isinstance(reported, Mapping) else None
    if type(total) is int and total >= 0:
        return Usage(input_tokens=total)
    return None
