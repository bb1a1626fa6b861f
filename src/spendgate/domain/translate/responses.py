"""Responses and error bodies, both ways, and the stop / finish reasons they carry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spendgate.domain.pricing import Usage
from spendgate.domain.translate._common import Json, _an_blocks, _dump, _mapping, _parse_arguments
from spendgate.domain.translate.usage import (
    _anthropic_usage,
    _openai_usage,
    usage_from_anthropic,
    usage_from_openai,
)

_FINISH_FROM_ANTHROPIC = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_STOP_FROM_OPENAI = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def finish_reason_from_anthropic(stop_reason: object) -> str | None:
    if stop_reason is None:
        return None
    return _FINISH_FROM_ANTHROPIC.get(str(stop_reason), "stop")


def stop_reason_from_openai(finish_reason: object) -> str | None:
    if finish_reason is None:
        return None
    return _STOP_FROM_OPENAI.get(str(finish_reason), "end_turn")


def anthropic_response_to_openai(
    body: Mapping[str, Any], *, created: int, model: str | None = None
) -> Json:
    """An Anthropic message as an OpenAI ``chat.completion``. ``created``: Unix seconds."""
    body = _mapping(body, "response")
    texts: list[str] = []
    calls: list[Json] = []
    for block in _an_blocks(body.get("content") or [], "content"):
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name", "")),
                        "arguments": _dump(block.get("input", {})),
                    },
                }
            )
    message: Json = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    out: Json = {
        "id": str(body.get("id", "")),
        "object": "chat.completion",
        "created": created,
        "model": model or str(body.get("model", "")),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason_from_anthropic(body.get("stop_reason")) or "stop",
            }
        ],
    }
    usage = usage_from_anthropic(body)
    if usage is not None:
        out["usage"] = _openai_usage(usage)
    return out


def openai_response_to_anthropic(body: Mapping[str, Any], *, model: str | None = None) -> Json:
    """An OpenAI ``chat.completion`` (its first choice) as an Anthropic message."""
    body = _mapping(body, "response")
    choices = body.get("choices") or [{}]
    choice = _mapping(choices[0], "choices[0]")
    message = _mapping(choice.get("message") or {}, "choices[0].message")
    content: list[Json] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    elif isinstance(text, list):
        joined = "".join(str(p.get("text", "")) for p in text if isinstance(p, Mapping))
        if joined:
            content.append({"type": "text", "text": joined})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})
    for call in message.get("tool_calls") or []:
        if not isinstance(call, Mapping):
            continue
        raw_function = call.get("function")
        function: Mapping[str, Any] = raw_function if isinstance(raw_function, Mapping) else {}
        content.append(
            {
                "type": "tool_use",
                "id": str(call.get("id", "")),
                "name": str(function.get("name", "")),
                "input": _parse_arguments(function.get("arguments")),
            }
        )
    usage = usage_from_openai(body) or Usage()
    return {
        "id": str(body.get("id", "")),
        "type": "message",
        "role": "assistant",
        "model": model or str(body.get("model", "")),
        "content": content,
        "stop_reason": stop_reason_from_openai(choice.get("finish_reason")) or "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(usage),
    }


# Errors

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    """Anthropic's error ``type`` for an HTTP status (its SDK picks the exception by it)."""
    return _ANTHROPIC_ERROR_TYPES.get(status, "api_error")


def _error_message(body: object) -> tuple[str, str | None]:
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        kind = error.get("type")
        return str(error.get("message", "")), kind if isinstance(kind, str) else None
    return (str(error) if error is not None else "upstream error"), None


def openai_error_to_anthropic(body: object, status: int) -> Json:
    message, _ = _error_message(body)
    kind = anthropic_error_type(status)
    return {"type": "error", "error": {"type": kind, "message": message}}


def anthropic_error_to_openai(body: object, status: int) -> Json:
    message, kind = _error_message(body)
    return {"error": {"message": message, "type": kind or "api_error", "code": None, "param": None}}
