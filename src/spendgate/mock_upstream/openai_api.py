"""OpenAI Chat Completions: request parsing and response / SSE chunk rendering."""

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

__all__ = ["SYSTEM_FINGERPRINT", "completion_body", "completion_events", "models_body", "parse"]

SYSTEM_FINGERPRINT = "fp_spendgate_mock"
_MODEL_CREATED = 1_715_367_049  # a fixed date: listings are stable across runs
_DONE = b"data: [DONE]\n\n"
_FINISH_REASONS: dict[Ending, str] = {"length": "length", "stop": "stop", "tool": "tool_calls"}


def parse(body: dict[str, Any], seed: int) -> ChatCall:
    model, messages = model_and_messages(
        body, "you must provide a model parameter", "'messages' must be a non-empty array"
    )
    meter = PromptMeter(seed)
    for message in messages:
        if not isinstance(message, dict):
            raise RequestError("each message must be an object", "messages")
        meter_content(message.get("content"), meter)
        name = message.get("name")
        if isinstance(name, str):
            meter.text(name)
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    meter.text(str(function.get("name", "")))
                    meter.text(str(function.get("arguments", "")))
        meter.end_message()
    tools = meter_tools(body, meter, "'tools' must be an array")
    tool = _choose_tool(tools, body.get("tool_choice")) if tools else None
    limit = body.get("max_completion_tokens")
    param = "max_completion_tokens"
    if limit is None:
        limit, param = body.get("max_tokens"), "max_tokens"
    if limit is not None and (type(limit) is not int or limit < 1):
        raise RequestError(f"'{param}' must be an integer >= 1", param)
    stream = body.get("stream") is True
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return ChatCall(model, stream, include_usage, limit, tool, meter.tokens, meter.digest())


def _choose_tool(tools: list[Any], choice: Any) -> ToolSpec | None:
    """The first function tool, or the one ``tool_choice`` names; none for "none"."""
    if choice == "none":
        return None
    wanted = None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        wanted = choice["function"].get("name")
    functions = (tool.get("function") if isinstance(tool, dict) else None for tool in tools)
    unknown = f"tool_choice names an unknown function: {wanted}"
    return pick_tool(functions, "parameters", wanted, unknown)


def _usage(reply: Reply) -> dict[str, Any]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _call_id(completion_id: str) -> str:
    return "call_" + completion_id.rpartition("-")[2]


def completion_body(reply: Reply, model: str, completion_id: str, created: int) -> bytes:
    message: dict[str, Any]
    if reply.tool_name is None:
        message = {"role": "assistant", "content": reply.text, "refusal": None, "annotations": []}
    else:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": _call_id(completion_id),
                    "type": "function",
                    "function": {"name": reply.tool_name, "arguments": reply.arguments},
                }
            ],
            "refusal": None,
            "annotations": [],
        }
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _FINISH_REASONS[reply.ending],
            }
        ],
    }
    if reply.usage:
        body["usage"] = _usage(reply)
    body["service_tier"] = "default"
    body["system_fingerprint"] = SYSTEM_FINGERPRINT
    return orjson.dumps(body)


def completion_events(
    reply: Reply, call: ChatCall, completion_id: str, created: int, chunks: int
) -> list[bytes]:
    """The SSE ``data:`` events of a streamed answer, in order, ending with ``[DONE]``.

    Like OpenAI: with ``stream_options.include_usage`` every chunk carries ``"usage": null``
    and one last chunk carries ``"choices": []`` and the usage.
    """
    base: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": call.model,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    with_usage = call.include_usage and reply.usage
    # Every chunk shares its envelope: encode it once and splice each delta in, instead of
    # encoding ~20 whole objects (this halves the cost of rendering a stream).
    head = b"data: " + orjson.dumps(base)[:-1] + b',"choices":[{"index":0,"delta":'
    tail = b',"logprobs":null,"finish_reason":null}]' + (b',"usage":null' if with_usage else b"")
    tail += b"}\n\n"

    def chunk(delta: dict[str, Any]) -> bytes:
        return head + orjson.dumps(delta) + tail

    if reply.tool_name is None:
        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        events += [chunk({"content": piece}) for piece in split_chunks(reply.text, chunks)]
    else:
        call_head = {
            "index": 0,
            "id": _call_id(completion_id),
            "type": "function",
            "function": {"name": reply.tool_name, "arguments": ""},
        }
        events = [chunk({"role": "assistant", "content": None, "tool_calls": [call_head]})]
        events += [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            for piece in split_chunks(reply.arguments, chunks)
        ]
    finish = orjson.dumps(_FINISH_REASONS[reply.ending])
    events.append(
        head + b"{}" + tail.replace(b'"finish_reason":null', b'"finish_reason":' + finish)
    )
    if with_usage:
        events.append(
            b"data: " + orjson.dumps({**base, "choices": [], "usage": _usage(reply)}) + b"\n\n"
        )
    events.append(_DONE)
    return events


def models_body(models: tuple[str, ...]) -> bytes:
    data = [
        {"id": model, "object": "model", "created": _MODEL_CREATED, "owned_by": "spendgate-mock"}
        for model in models
    ]
    return orjson.dumps({"object": "list", "data": data})
