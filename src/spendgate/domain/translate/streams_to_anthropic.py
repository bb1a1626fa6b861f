"""Streams: OpenAI ``chat.completion.chunk`` SSE → Anthropic message events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spendgate.domain.pricing import Usage
from spendgate.domain.translate._common import _DONE, Json, _load
from spendgate.domain.translate.responses import (
    openai_error_to_anthropic,
    stop_reason_from_openai,
)
from spendgate.domain.translate.sse import SSEDecoder, SSEEvent, encode_sse
from spendgate.domain.translate.usage import _anthropic_usage, usage_from_openai


class OpenAIToAnthropicStream:
    """Converts OpenAI ``chat.completion.chunk`` SSE into Anthropic message events.

    OpenAI sends usage only in the last chunk (with ``stream_options.include_usage``), so
    ``message_start`` carries zero usage and ``message_delta`` the real counts (input,
    output and cache reads), which the Anthropic SDK reads from there.
    """

    def __init__(self, *, model: str | None = None) -> None:
        self.model = model
        self.id = ""
        self.stop_reason: str | None = None
        self.done = False
        self.error: Mapping[str, Any] | None = None
        self.usage: Usage | None = None
        self._decoder = SSEDecoder()
        self._started = False
        self._block: int | None = None  # index of the open content block
        self._block_kind: str | None = None
        self._blocks = 0
        self._tools: dict[int, int] = {}  # OpenAI tool-call index → Anthropic block index

    def feed(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        for event in self._decoder.feed(chunk):
            out.extend(self.feed_event(event))
        return b"".join(out)

    def close(self) -> bytes:
        out: list[bytes] = []
        for event in self._decoder.flush():
            out.extend(self.feed_event(event))
        if not self.done:
            out.extend(self._finish())
        return b"".join(out)

    def feed_event(self, event: SSEEvent) -> list[bytes]:
        if self.done:
            return []
        if event.data == _DONE:
            return self._finish()
        obj = _load(event.data)
        if not isinstance(obj, dict):
            return []
        if "error" in obj:
            self.done = True
            self.error = obj["error"] if isinstance(obj["error"], dict) else {}
            return [encode_sse(openai_error_to_anthropic(obj, 500), "error")]
        out: list[bytes] = []
        if not self._started:
            self.id = str(obj.get("id", ""))
            self.model = self.model or str(obj.get("model", ""))
            out.append(self._message_start())
        usage = usage_from_openai(obj)
        if usage is not None and obj.get("usage") is not None:
            self.usage = usage
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return out
        choice = choices[0]
        delta = choice.get("delta")
        if isinstance(delta, dict):
            text = delta.get("content") or delta.get("refusal")
            if isinstance(text, str) and text:
                out.extend(self._text(text))
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                for call in calls:
                    if isinstance(call, dict):
                        out.extend(self._tool_call(call))
        if choice.get("finish_reason") is not None:
            self.stop_reason = stop_reason_from_openai(choice["finish_reason"])
            out.extend(self._close_block())
        return out

    def _message_start(self) -> bytes:
        self._started = True
        message: Json = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model or "",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return encode_sse({"type": "message_start", "message": message}, "message_start")

    def _open_block(self, block: Json, kind: str) -> list[bytes]:
        out = self._close_block()
        index = self._blocks
        self._blocks += 1
        self._block, self._block_kind = index, kind
        payload = {"type": "content_block_start", "index": index, "content_block": block}
        out.append(encode_sse(payload, "content_block_start"))
        return out

    def _close_block(self) -> list[bytes]:
        if self._block is None:
            return []
        payload = {"type": "content_block_stop", "index": self._block}
        self._block = self._block_kind = None
        return [encode_sse(payload, "content_block_stop")]

    def _delta(self, index: int, delta: Json) -> bytes:
        payload = {"type": "content_block_delta", "index": index, "delta": delta}
        return encode_sse(payload, "content_block_delta")

    def _text(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        if self._block_kind != "text":
            out = self._open_block({"type": "text", "text": ""}, "text")
        assert self._block is not None
        out.append(self._delta(self._block, {"type": "text_delta", "text": text}))
        return out

    def _tool_call(self, call: Mapping[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        position = call.get("index", 0)
        raw_function = call.get("function")
        function: Mapping[str, Any] = raw_function if isinstance(raw_function, dict) else {}
        block = self._tools.get(position)
        if block is None:
            block_json = {
                "type": "tool_use",
                "id": str(call.get("id", "")),
                "name": str(function.get("name", "")),
                "input": {},
            }
            out = self._open_block(block_json, "tool_use")
            block = self._tools[position] = self._blocks - 1
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out.append(self._delta(block, {"type": "input_json_delta", "partial_json": arguments}))
        return out

    def _finish(self) -> list[bytes]:
        self.done = True
        out = [] if self._started else [self._message_start()]
        out.extend(self._close_block())
        usage = _anthropic_usage(self.usage) if self.usage is not None else {"output_tokens": 0}
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason or "end_turn", "stop_sequence": None},
            "usage": usage,
        }
        out.append(encode_sse(delta, "message_delta"))
        out.append(encode_sse({"type": "message_stop"}, "message_stop"))
        return out
