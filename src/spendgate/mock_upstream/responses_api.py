"""OpenAI Responses API (``POST /v1/responses``): request parsing, the response object and its
SSE events, and the responses kept for ``previous_response_id``.

Like OpenAI: ``input`` is a string or a list of items, ``instructions`` counts as a message,
the usage has ``input_tokens_details.cached_tokens`` (``x-mock-cached-tokens``) and
``output_tokens_details.reasoning_tokens`` (when ``reasoning`` is asked: a fixed count per
effort, inside ``output_tokens`` and ``max_output_tokens``). With function tools the answer is
a call of the first (or the one ``tool_choice`` names), unless the input ends with a
``function_call_output``: then the result has been read and the answer is text. A
``previous_response_id`` must name a response this mock gave; its input and output are billed
again as input, as OpenAI does.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from spendgate.mock_upstream.reply import (
    ChatCall,
    Reply,
    RequestError,
    ToolSpec,
    meter_content,
    meter_tools,
    pick_tool,
    split_chunks,
)
from spendgate.mock_upstream.textgen import PromptMeter

__all__ = [
    "REASONING_TOKENS",
    "ResponseStore",
    "ResponsesCall",
    "parse",
    "response_body",
    "response_events",
    "stored_tokens",
]

# Reasoning tokens reported per ``reasoning.effort`` (medium when none is named).
REASONING_TOKENS = {"minimal": 0, "low": 16, "medium": 64, "high": 256}
_STORED_RESPONSES = 4096


class ResponseStore:
    """The tokens of the responses given (input and output): what a later request naming
    one as ``previous_response_id`` is billed for again. Bounded: the oldest are forgotten."""

    def __init__(self, size: int = _STORED_RESPONSES) -> None:
        self._tokens: OrderedDict[str, int] = OrderedDict()
        self._size = size

    def remember(self, response_id: str, tokens: int) -> None:
        self._tokens[response_id] = tokens
        if len(self._tokens) > self._size:
            self._tokens.popitem(last=False)

    def tokens(self, response_id: str) -> int | None:
        return self._tokens.get(response_id)


@dataclass(slots=True)
class ResponsesCall(ChatCall):
    reasoning_tokens: int = 0
    store: bool = True


def parse(body: dict[str, Any], seed: int, store: ResponseStore) -> ResponsesCall:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("Missing required parameter: 'model'.", "model")
    meter = PromptMeter(seed)
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        meter.text(instructions)
        meter.end_message()
    raw_input = body.get("input")
    last_type = "message"
    if isinstance(raw_input, str):
        meter.text(raw_input)
        meter.end_message()
    elif isinstance(raw_input, list):
        for item in raw_input:
            if not isinstance(item, dict):
                raise RequestError("Invalid type for 'input': expected an object.", "input")
            last_type = str(item.get("type", "message"))
            _meter_item(item, meter)
            meter.end_message()
    elif raw_input is not None:
        raise RequestError("Invalid type for 'input': expected a string or array.", "input")
    earlier = 0
    previous = body.get("previous_response_id")
    if previous is not None:
        found = store.tokens(previous) if isinstance(previous, str) else None
        if found is None:
            message = f"Previous response with id '{previous}' not found."
            raise RequestError(message, "previous_response_id")
        earlier = found
    elif raw_input is None:
        raise RequestError("Missing required parameter: 'input'.", "input")
    tools = meter_tools(body, meter, "Invalid type for 'tools': expected an array.")
    tool = None
    if tools and last_type != "function_call_output":
        tool = _choose_tool(tools, body.get("tool_choice"))
    limit = body.get("max_output_tokens")
    if limit is not None and (type(limit) is not int or limit < 1):
        raise RequestError("'max_output_tokens' must be an integer >= 1", "max_output_tokens")
    reasoning = _reasoning_tokens(body.get("reasoning"), limit)
    return ResponsesCall(
        model,
        body.get("stream") is True,
        True,
        None if limit is None else limit - reasoning,
        tool,
        meter.tokens + earlier,
        meter.digest(),
        reasoning,
        body.get("store") is not False,
    )


def _meter_item(item: dict[str, Any], meter: PromptMeter) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        content = item.get("content")
        if isinstance(content, list):
            for part in content:
                _meter_part(part, meter)
        else:
            meter_content(content, meter)
    elif kind == "function_call":
        meter.text(str(item.get("name", "")))
        meter.text(str(item.get("arguments", "")))
    elif kind == "function_call_output":
        output = item.get("output")
        meter_content(output, meter)
    elif kind == "reasoning":
        for part in item.get("summary") or ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                meter.text(part["text"])
    else:
        meter.raw_json(orjson.dumps(item))


def _meter_part(part: Any, meter: PromptMeter) -> None:
    if not isinstance(part, dict):
        raise RequestError("Invalid type for 'input[].content[]': expected an object.", "input")
    kind = part.get("type")
    if kind == "input_image":
        meter.image()
    elif kind == "input_file" and isinstance(part.get("file_data"), str):
        meter.text(part["file_data"])  # read whole, as a provider reads the file
    elif kind == "refusal":
        meter.text(str(part.get("refusal", "")))
    else:
        meter_content([part], meter)


def _choose_tool(tools: list[Any], choice: Any) -> ToolSpec | None:
    """The first function tool, or the one ``tool_choice`` names; none for "none"."""
    if choice == "none":
        return None
    wanted = choice.get("name") if isinstance(choice, dict) else None
    functions = (
        tool for tool in tools if isinstance(tool, dict) and tool.get("type") == "function"
    )
    return pick_tool(functions, "parameters", wanted, f"Tool choice '{wanted}' not found.")


def _reasoning_tokens(reasoning: Any, limit: Any) -> int:
    if not isinstance(reasoning, dict):
        return 0
    tokens = REASONING_TOKENS.get(str(reasoning.get("effort") or "medium"), 0)
    return min(tokens, limit // 2) if isinstance(limit, int) else tokens


def _usage(reply: Reply, call: ResponsesCall) -> dict[str, Any] | None:
    if not reply.usage:
        return None
    output = reply.completion_tokens + call.reasoning_tokens
    return {
        "input_tokens": reply.prompt_tokens,
        "input_tokens_details": {"cached_tokens": reply.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": call.reasoning_tokens},
        "total_tokens": reply.prompt_tokens + output,
    }


def stored_tokens(reply: Reply) -> int:
    """What a later request continuing this response is billed for it (its input and its
    visible output; OpenAI drops earlier reasoning)."""
    return reply.prompt_tokens + reply.completion_tokens


def _items(reply: Reply, call: ResponsesCall, serial: str) -> list[dict[str, Any]]:
    """The output items, finished."""
    items: list[dict[str, Any]] = []
    if call.reasoning_tokens:
        items.append({"type": "reasoning", "id": f"rs_{serial}", "summary": []})
    if reply.tool_name is None:
        items.append(_message(serial, reply.text, "completed"))
    else:
        items.append(_call(serial, reply, reply.arguments, "completed"))
    return items


def _message(serial: str, text: str | None, status: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_{serial}",
        "status": status,
        "role": "assistant",
        "content": [] if text is None else [_text_part(text)],
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _call(serial: str, reply: Reply, arguments: str, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{serial}",
        "call_id": f"call_{serial}",
        "name": reply.tool_name,
        "arguments": arguments,
        "status": status,
    }


def _response(
    body: dict[str, Any],
    serial: str,
    created: int,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "id": f"resp_{serial}",
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": ({"reason": "max_output_tokens"} if status == "incomplete" else None),
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model"),
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage,
        "metadata": body.get("metadata") or {},
    }


def _final_status(reply: Reply) -> str:
    return "incomplete" if reply.truncated else "completed"


def response_body(
    body: dict[str, Any], reply: Reply, call: ResponsesCall, serial: str, created: int
) -> bytes:
    status = _final_status(reply)
    output = _items(reply, call, serial)
    return orjson.dumps(_response(body, serial, created, status, output, _usage(reply, call)))


def response_events(
    body: dict[str, Any],
    reply: Reply,
    call: ResponsesCall,
    serial: str,
    created: int,
    chunks: int,
) -> list[bytes]:
    """The SSE events of a streamed answer, in OpenAI's order, each with its
    ``sequence_number``; the last is ``response.completed`` (``response.incomplete`` when cut
    at ``max_output_tokens``) holding the response and its usage."""
    events: list[bytes] = []

    def emit(kind: str, fields: dict[str, Any]) -> None:
        payload = {"type": kind, **fields, "sequence_number": len(events)}
        events.append(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n")

    started = _response(body, serial, created, "in_progress", [], None)
    emit("response.created", {"response": started})
    emit("response.in_progress", {"response": started})
    done = _items(reply, call, serial)
    for index, item in enumerate(done):
        if item["type"] == "reasoning":
            emit("response.output_item.added", {"output_index": index, "item": item})
        elif item["type"] == "message":
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            added = _message(serial, None, "in_progress")
            emit("response.output_item.added", {"output_index": index, "item": added})
            emit("response.content_part.added", {**where, "part": _text_part("")})
            for piece in split_chunks(reply.text, chunks):
                emit("response.output_text.delta", {**where, "delta": piece, "logprobs": []})
            emit("response.output_text.done", {**where, "text": reply.text, "logprobs": []})
            emit("response.content_part.done", {**where, "part": _text_part(reply.text)})
        else:
            where = {"item_id": item["id"], "output_index": index}
            added = _call(serial, reply, "", "in_progress")
            emit("response.output_item.added", {"output_index": index, "item": added})
            for piece in split_chunks(reply.arguments, chunks):
                emit("response.function_call_arguments.delta", {**where, "delta": piece})
            emit(
                "response.function_call_arguments.done",
                {**where, "name": reply.tool_name, "arguments": reply.arguments},
            )
        emit("response.output_item.done", {"output_index": index, "item": item})
    status = _final_status(reply)
    final = _response(body, serial, created, status, done, _usage(reply, call))
    emit(f"response.{status}", {"response": final})
    return events
