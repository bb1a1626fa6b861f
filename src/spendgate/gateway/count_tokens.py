"""``POST /v1/messages/count_tokens`` (Anthropic's shape → ``{"input_tokens": N}``).

Free, so it reserves nothing and makes no routing decision; but it is authenticated and
scoped like every proxy route (the key must be allowed the model). A model on an Anthropic
provider is counted by the provider (exact, and free at Anthropic); any other model, or an
Anthropic provider that cannot be reached, is counted locally from the gateway's calibrated
estimate (``domain/tokens.py``). The header ``x-spendgate-token-count`` says which:
``provider`` or ``estimate`` (then ``x-spendgate-token-count-upper`` gives the estimate's
upper bound, the figure budgets reserve). See docs/endpoints.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from spendgate.domain.keys import ApiKey
from spendgate.domain.models import Model
from spendgate.domain.planner import AUTO_MODEL, is_embeddings_model
from spendgate.domain.requests import ChatRequest, Protocol, RequestError
from spendgate.domain.tokens import estimate_input_tokens
from spendgate.gateway.asgi import (
    ClientDisconnectedError,
    Receive,
    Scope,
    Send,
    respond,
)
from spendgate.gateway.auth import KeyRing
from spendgate.gateway.errors import (
    GatewayError,
    bad_request,
    model_not_allowed,
    model_not_found,
    model_unsuited,
)
from spendgate.gateway.intake import read_request
from spendgate.gateway.metrics import GatewayMetrics
from spendgate.governor import Governor
from spendgate.providers.anthropic import AnthropicUpstream
from spendgate.providers.errors import error_from_response
from spendgate.providers.registry import UpstreamRegistry

__all__ = ["COUNT_TOKENS_ROUTE", "TokenCounter"]

COUNT_TOKENS_ROUTE = "/v1/messages/count_tokens"
_SOURCE = b"x-spendgate-token-count"
# Client headers passed on to the provider: beta features change what is counted.
_FORWARDED = ("anthropic-beta",)


class TokenCounter:
    def __init__(
        self,
        governor: Governor,
        keys: KeyRing,
        upstreams: UpstreamRegistry,
        metrics: GatewayMetrics,
        max_body: int,
    ) -> None:
        self.governor = governor
        self.keys = keys
        self.upstreams = upstreams
        self.metrics = metrics
        self.max_body = max_body

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 200
        try:
            status = await self._count(scope, receive, send)
        except GatewayError as error:
            status = error.status
            await respond(send, status, error.body(Protocol.ANTHROPIC), error.response_headers())
        except ClientDisconnectedError:
            status = 499
        self.metrics.requests.labels(COUNT_TOKENS_ROUTE, str(status)).inc()

    async def _count(self, scope: Scope, receive: Receive, send: Send) -> int:
        headers, key, payload = await read_request(scope, receive, self.keys, self.max_body)
        try:
            # The Messages shape, checked as /v1/messages checks it (max_tokens is not part
            # of a count: a placeholder satisfies the parser).
            chat = ChatRequest.from_anthropic({"max_tokens": 1, **payload})
        except RequestError as error:
            raise bad_request(str(error), error.param) from None
        model = self._model(chat.model, key)
        upstream = self.upstreams[model.provider]
        if isinstance(upstream, AnthropicUpstream):
            counted = await self._provider_count(upstream, model, payload, headers)
            if counted is not None:
                status, body = counted
                await respond(send, status, body, [(_SOURCE, b"provider")])
                return status
        estimate = estimate_input_tokens(chat)
        body = orjson.dumps({"input_tokens": estimate.point})
        upper = (b"x-spendgate-token-count-upper", b"%d" % estimate.upper)
        await respond(send, 200, body, [(_SOURCE, b"estimate"), upper])
        return 200

    def _model(self, name: str, key: ApiKey) -> Model:
        state = self.governor.state
        if name == AUTO_MODEL and state.settings.default_model is not None:
            name = state.settings.default_model
        model = state.models.get(name)
        if model is None or not model.enabled:
            raise model_not_found(name)
        if not key.allows_model(model.id):
            raise model_not_allowed(model.id)
        if is_embeddings_model(model):
            raise model_unsuited(
                f"The model {model.id!r} is an embeddings model: it reads no messages."
            )
        return model

    async def _provider_count(
        self,
        upstream: AnthropicUpstream,
        model: Model,
        payload: Mapping[str, Any],
        headers: Mapping[str, str],
    ) -> tuple[int, bytes] | None:
        """The provider's answer, relayed: its count, or its refusal of the request (a 4xx,
        in Anthropic's envelope). None when it cannot answer (unreachable, a 5xx): the
        estimate answers instead."""
        forwarded = {name: headers[name] for name in _FORWARDED if name in headers}
        sent = {**forwarded, "content-type": "application/json", **upstream.credential_headers()}
        body = orjson.dumps({**payload, "model": model.upstream_model})
        try:
            async with upstream.pool.session().post(
                upstream.count_tokens_url(),
                data=body,
                headers=sent,
                timeout=aiohttp.ClientTimeout(total=upstream.provider.timeout_s),
            ) as response:
                raw = await response.read()
                status = response.status
                reply_headers = response.headers
        except (aiohttp.ClientError, TimeoutError):
            return None
        if status == 200:
            counted = _input_tokens(raw)
            return None if counted is None else (200, orjson.dumps({"input_tokens": counted}))
        if 400 <= status < 500 and status != 429:
            error = error_from_response(
                upstream.provider.id, status, raw, reply_headers, upstream.secrets
            )
            refused = GatewayError(status, "upstream_refused", error.message)
            return status, refused.body(Protocol.ANTHROPIC)
        return None


def _input_tokens(raw: bytes) -> int | None:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    count = body.get("input_tokens") if isinstance(body, dict) else None
    return count if type(count) is int and count >= 0 else None
