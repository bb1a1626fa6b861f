"""Anthropic Messages: request parsing and response / SSE event rendering."""

from __future__ import annotations

from typing import Any

import orjson

from spendgate.mock_upstream.reply import (
    ChatCall,
    Ending,
    Reply,
    RequestError,
    ToolSpec,
    meter_content,
    meter_tools,
    model_and_messages,
    pick_tool,
    split_chunks,
)
from spendgate.mock_upstream.textgen import PromptMeter

__all__ = ["message_body", "message_events", "models_body", "parse"]

_MODEL_CREATED_AT = "2025-05-14T00:00:00Z"
_DELTA_EVENT_HEAD = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":'
)
_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_BLOCK_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_STOP_REASONS: dict[Ending, str] = {"length": "max_tokens", "stop": "end_turn", "tool": "tool_use"}


def parse(body: dict[str, Any], seed: int) -> ChatCall:
    model, messages = model_and_messages(
        body, "model: Field required", "messages: must be a non-empty list"
    )
    limit = body.get("max_tokens")
    # Unlike OpenAI, max_tokens is mandatory here: the real API rejects a request without it.
    if type(limit) is not int or limit < 1:
        raise RequestError("max_tokens: Field required (an integer >= 1)", "max_tokens")
    meter = PromptMeter(seed)
    system = body.get("system")
    if system:
        meter_content(system, meter)  # the system prompt counts as one more message
        meter.end_message()
    for message in messages:
        if not isinstance(message, dict):
            raise RequestError("messages: each message must be an object", "messages")
        meter_content(message.get("content"), meter)
        meter.end_message()
    tools = meter_tools(body, meter, "tools: must be a list")
    tool = _choose_tool(tools, body.get("tool_choice")) if tools else None
    stream = body.get("stream") is True
    return ChatCall(model, stream, True, limit, tool, meter.tokens, meter.digest())


def _choose_tool(tools: list[Any], choice: Any) -> ToolSpec | None:
    """The first tool, or the one ``tool_choice`` names; none for ``{"type": "none"}``."""
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "none":
        return None
    wanted = choice.get("name") if kind == "tool" and isinstance(choice, dict) else None
    return pick_tool(tools, "input_schema", wanted, f"tool_choice: unknown tool {wanted}")


def _usage(reply: Reply) -> dict[str, Any]:
    # Anthropic's input_tokens excludes cache reads (OpenAI's prompt_tokens includes them).
    return {
        "input_tokens": reply.prompt_tokens - reply.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": reply.cached_tokens,
        "output_tokens": reply.completion_tokens,
        "service_tier": "standard",
    }


def _tool_use_id(message_id: str) -> str:
    return "toolu_" + message_id.partition("_")[2]


def message_body(reply: Reply, model: str, message_id: str) -> bytes:
    block: dict[str, Any]
    if reply.tool_name is None:
        block = {"type": "text", "text": reply.text}
    else:
        # A truncated tool call has no parseable input: the real API then sends {} as well.
        tool_input = {} if reply.truncated else orjson.loads(reply.arguments)
        block = {
            "type": "tool_use",
            "id": _tool_use_id(message_id),
            "name": reply.tool_name,
            "input": tool_input,
        }
    body: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [block],
        "stop_reason": _STOP_REASONS[reply.ending],
        "stop_sequence": None,
    }
    if reply.usage:
        body["usage"] = _usage(reply)
    return orjson.dumps(body)


def _event(name: bytes, data: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def message_events(reply: Reply, model: str, message_id: str, chunks: int) -> list[bytes]:
    """The SSE events of a streamed answer, in the real API's order."""
    message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    usage = _usage(reply)
    if reply.usage:
        # message_start reports the input and a token or so of output; message_delta then
        # carries the cumulative totals (not increments: adding them double counts).
        message["usage"] = {**usage, "output_tokens": 1}
    if reply.tool_name is None:
        block: dict[str, Any] = {"type": "text", "text": ""}
        delta_head, field = b'{"type":"text_delta","text":', reply.text
    else:
        block = {
            "type": "tool_use",
            "id": _tool_use_id(message_id),
            "name": reply.tool_name,
            "input": {},
        }
        delta_head, field = b'{"type":"input_json_delta","partial_json":', reply.arguments
    # The deltas are spliced from constant bytes: encoding whole objects costs twice as much.
    delta_head = _DELTA_EVENT_HEAD + delta_head
    events = [
        _event(b"message_start", {"type": "message_start", "message": message}),
        _event(
            b"content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        ),
        _PING,
    ]
    events += [
        delta_head + orjson.dumps(piece) + b"}}\n\n" for piece in split_chunks(field, chunks)
    ]
    events.append(_BLOCK_STOP)
    final: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": _STOP_REASONS[reply.ending], "stop_sequence": None},
    }
    if reply.usage:
        final["usage"] = {key: usage[key] for key in _DELTA_USAGE_KEYS}
    events.append(_event(b"message_delta", final))
    events.append(_MESSAGE_STOP)
    return events


_DELTA_USAGE_KEYS = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)


def models_body(models: tuple[str, ...]) -> bytes:
    """Anthropic's model list; lists the ``claude*`` models (all of them if there is none)."""
    claude = [model for model in models if model.startswith("claude")] or list(models)
    data = [
        {
            "type": "model",
            "id": model,
            "display_name": model.replace("-", " ").title(),
            "created_at": _MODEL_CREATED_AT,
            "lifecycle": "active",
        }
        for model in claude
    ]
    return orjson.dumps(
        {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )
