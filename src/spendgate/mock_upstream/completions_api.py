"""OpenAI legacy completions (``POST /v1/completions``): request parsing and text_completion
bodies and SSE chunks. One choice (``n``, ``best_of``, ``echo``, ``suffix`` and ``logprobs``
are accepted and ignored)."""

from __future__ import annotations

from typing import Any

import orjson

from spendgate.mock_upstream.legacy_prompt import meter_prompt
from spendgate.mock_upstream.openai_api import SYSTEM_FINGERPRINT
from spendgate.mock_upstream.reply import ChatCall, Ending, Reply, RequestError, split_chunks
from spendgate.mock_upstream.textgen import PromptMeter

__all__ = ["DEFAULT_MAX_TOKENS", "completion_body", "completion_events", "parse"]

DEFAULT_MAX_TOKENS = 16  # OpenAI's, for this API
_DONE = b"data: [DONE]\n\n"
_FINISH_REASONS: dict[Ending, str] = {"length": "length", "stop": "stop", "tool": "stop"}


def parse(body: dict[str, Any], seed: int) -> ChatCall:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("you must provide a model parameter", "model")
    meter = PromptMeter(seed)
    tokens, _ = meter_prompt(body.get("prompt"), "prompt", meter)
    limit = body.get("max_tokens", DEFAULT_MAX_TOKENS)
    if limit is None:
        limit = DEFAULT_MAX_TOKENS
    if type(limit) is not int or limit < 0:
        raise RequestError("'max_tokens' must be an integer >= 0", "max_tokens")
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return ChatCall(
        model, body.get("stream") is True, include_usage, limit, None, tokens, meter.digest()
    )


def _usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _envelope(completion_id: str, created: int, model: str) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def _choice(text: str, finish: str | None) -> dict[str, Any]:
    return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}


def completion_body(reply: Reply, model: str, completion_id: str, created: int) -> bytes:
    body = _envelope(completion_id, created, model)
    body["choices"] = [_choice(reply.text, _FINISH_REASONS[reply.ending])]
    if reply.usage:
        body["usage"] = _usage(reply)
    return orjson.dumps(body)


def completion_events(
    reply: Reply, call: ChatCall, completion_id: str, created: int, chunks: int
) -> list[bytes]:
    """Text chunks, one with ``finish_reason``, the usage chunk (``"choices": []``) when
    ``stream_options.include_usage`` asks for it, then ``[DONE]``."""
    base = _envelope(completion_id, created, call.model)

    def event(payload: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps({**base, **payload}) + b"\n\n"

    events = [
        event({"choices": [_choice(piece, None)]}) for piece in split_chunks(reply.text, chunks)
    ]
    events.append(event({"choices": [_choice("", _FINISH_REASONS[reply.ending])]}))
    if call.include_usage and reply.usage:
        events.append(event({"choices": [], "usage": _usage(reply)}))
    events.append(_DONE)
    return events
