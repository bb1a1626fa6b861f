"""Answers: an Anthropic message (and its SSE stream) as an OpenAI Responses API response.

Text blocks become ``message`` output items (one per block, one ``output_text`` part each),
``tool_use`` blocks ``function_call`` items; thinking blocks are dropped (a Responses request
translated to Anthropic never asks for thinking). ``max_tokens`` as the stop reason makes the
response ``incomplete`` (``max_output_tokens``), as OpenAI reports it. The stream emits the
Responses events in OpenAI's order, each with its ``sequence_number``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spendgate.domain.pricing import Usage
from spendgate.domain.translate._common import Json, _an_blocks, _dump, _load, _mapping
from spendgate.domain.translate.responses import anthropic_error_to_openai
from spendgate.domain.translate.sse import SSEDecoder, encode_sse
from spendgate.domain.translate.usage import _responses_usage, _UsageFields, usage_from_anthropic

__all__ = ["AnthropicToResponsesStream", "anthropic_response_to_responses"]


def anthropic_response_to_responses(
    body: Mapping[str, Any], *, created: int, model: str, request: Mapping[str, Any]
) -> Json:
    """An Anthropic message as a Responses ``response`` object; ``request`` (the client's
    body) gives the fields a response echoes."""
    body = _mapping(body, "response")
    message_id = str(body.get("id", ""))
    output: list[Json] = []
    for index, block in enumerate(_an_blocks(body.get("content") or [], "content")):
        if block.get("type") == "text":
            output.append(_message_item(f"{message_id}_{index}", str(block.get("text", ""))))
        elif block.get("type") == "tool_use":
            arguments = _dump(block.get("input", {}))
            output.append(_call_item(block, arguments))
    usage = body.get("usage")
    written = usage.get("cache_creation_input_tokens") if isinstance(usage, Mapping) else None
    return _response(
        message_id,
        created,
        model,
        request,
        output,
        usage_from_anthropic(body),
        body.get("stop_reason"),
        cache_write=written if isinstance(written, int) else 0,
    )


def _response(
    message_id: str,
    created: int,
    model: str,
    request: Mapping[str, Any],
    output: list[Json],
    usage: Usage | None,
    stop_reason: object,
    *,
    status: str | None = None,
    cache_write: int = 0,
) -> Json:
    incomplete = stop_reason in ("max_tokens", "model_context_window_exceeded")
    if status is None:
        status = "incomplete" if incomplete else "completed"
    return {
        "id": f"resp_{message_id}",
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": request.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools", []),
        "top_p": request.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": _responses_usage(usage, cache_write) if usage is not None else None,
        "metadata": request.get("metadata") or {},
    }


def _message_item(item_id: str, text: str, status: str = "completed") -> Json:
    content = [_text_part(text)] if status == "completed" else []
    return {
        "type": "message",
        "id": f"msg_{item_id}",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _text_part(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _call_item(block: Mapping[str, Any], arguments: str, status: str = "completed") -> Json:
    call_id = str(block.get("id", ""))
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": str(block.get("name", "")),
        "arguments": arguments,
        "status": status,
    }


class AnthropicToResponsesStream:
    """Converts an Anthropic SSE stream into Responses API SSE events. ``feed`` takes raw
    upstream bytes and returns the bytes for the client; ``close`` ends a stream whose
    ``message_stop`` never came with ``response.completed`` (the gateway calls it only after
    the upstream's end)."""

    def __init__(self, *, created: int, model: str, request: Mapping[str, Any]) -> None:
        self.created = created
        self.model = model
        self.request = request
        self.message_id = ""
        self.stop_reason: object = None
        self.done = False
        self._sequence = 0
        self._usage = _UsageFields()
        self._decoder = SSEDecoder()
        self._output: list[Json] = []
        # Anthropic block index → (output index, item, the text or arguments so far)
        self._open: dict[int, tuple[int, Json, list[str]]] = {}

    @property
    def usage(self) -> Usage | None:
        return self._usage.usage

    def feed(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        for event in self._decoder.feed(chunk):
            obj = _load(event.data)
            if isinstance(obj, dict) and not self.done:
                self._event(event.event or str(obj.get("type")), obj, out)
        return b"".join(out)

    def close(self) -> bytes:
        out: list[bytes] = []
        if not self.done:
            self._finish(out)
        return b"".join(out)

    def _emit(self, out: list[bytes], kind: str, fields: Json) -> None:
        out.append(encode_sse({"type": kind, **fields, "sequence_number": self._sequence}, kind))
        self._sequence += 1

    def _snapshot(self, status: str) -> Json:
        return _response(
            self.message_id,
            self.created,
            self.model,
            self.request,
            list(self._output),
            self.usage if status != "in_progress" else None,
            self.stop_reason,
            status=None if status == "done" else status,
            cache_write=self._usage.fields.get("cache_creation_input_tokens", 0),
        )

    def _event(self, kind: str, obj: dict[str, Any], out: list[bytes]) -> None:
        if kind == "message_start":
            message = obj.get("message")
            if isinstance(message, dict):
                self.message_id = str(message.get("id", ""))
                self._usage.merge(message.get("usage"))
            self._emit(out, "response.created", {"response": self._snapshot("in_progress")})
            self._emit(out, "response.in_progress", {"response": self._snapshot("in_progress")})
        elif kind == "content_block_start":
            self._start(obj, out)
        elif kind == "content_block_delta":
            self._delta(obj, out)
        elif kind == "content_block_stop":
            self._stop(obj.get("index"), out)
        elif kind == "message_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason") is not None:
                self.stop_reason = delta["stop_reason"]
            self._usage.merge(obj.get("usage"))
        elif kind == "message_stop":
            self._finish(out)
        elif kind == "error":
            self.done = True
            error = anthropic_error_to_openai(obj, 500)["error"]
            # ``error`` too: the OpenAI SDKs raise on an event carrying one.
            fields = {"code": error["type"], "message": error["message"], "param": None}
            self._emit(out, "error", {**fields, "error": error})
        elif kind == "ping":
            out.append(b": ping\n\n")

    def _start(self, obj: dict[str, Any], out: list[bytes]) -> None:
        block = obj.get("content_block")
        index = obj.get("index")
        if not isinstance(block, dict) or not isinstance(index, int):
            return
        position = len(self._output)
        if block.get("type") == "text":
            item = _message_item(f"{self.message_id}_{index}", "", "in_progress")
            self._open[index] = (position, item, [])
            self._output.append(item)
            self._emit(out, "response.output_item.added", {"output_index": position, "item": item})
            part = {"item_id": item["id"], "output_index": position, "content_index": 0}
            self._emit(out, "response.content_part.added", {**part, "part": _text_part("")})
            if block.get("text"):
                self._delta({"index": index, "delta": {"text": block["text"]}}, out)
        elif block.get("type") == "tool_use":
            item = _call_item(block, "", "in_progress")
            self._open[index] = (position, item, [])
            self._output.append(item)
            self._emit(out, "response.output_item.added", {"output_index": position, "item": item})

    def _delta(self, obj: Mapping[str, Any], out: list[bytes]) -> None:
        opened = self._open.get(obj.get("index", -1))
        delta = obj.get("delta")
        if opened is None or not isinstance(delta, Mapping):
            return
        position, item, pieces = opened
        if item["type"] == "message" and isinstance(delta.get("text"), str):
            pieces.append(delta["text"])
            fields = {"item_id": item["id"], "output_index": position, "content_index": 0}
            text = {"delta": delta["text"], "logprobs": []}
            self._emit(out, "response.output_text.delta", {**fields, **text})
        elif item["type"] == "function_call" and isinstance(delta.get("partial_json"), str):
            pieces.append(delta["partial_json"])
            fields = {"item_id": item["id"], "output_index": position}
            event = "response.function_call_arguments.delta"
            self._emit(out, event, {**fields, "delta": delta["partial_json"]})

    def _stop(self, index: object, out: list[bytes]) -> None:
        opened = self._open.pop(index, None) if isinstance(index, int) else None
        if opened is None:
            return
        position, item, pieces = opened
        text = "".join(pieces)
        if item["type"] == "message":
            done = _message_item(item["id"].removeprefix("msg_"), text)
            fields = {"item_id": item["id"], "output_index": position, "content_index": 0}
            self._emit(out, "response.output_text.done", {**fields, "text": text, "logprobs": []})
            self._emit(out, "response.content_part.done", {**fields, "part": _text_part(text)})
        else:
            arguments = text or "{}"  # a call without arguments streams none
            done = {**item, "arguments": arguments, "status": "completed"}
            fields = {"item_id": item["id"], "output_index": position}
            event = "response.function_call_arguments.done"
            self._emit(out, event, {**fields, "name": item["name"], "arguments": arguments})
        self._output[position] = done
        self._emit(out, "response.output_item.done", {"output_index": position, "item": done})

    def _finish(self, out: list[bytes]) -> None:
        for index in list(self._open):
            self._stop(index, out)
        self.done = True
        response = self._snapshot("done")
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        self._emit(out, kind, {"response": response})
