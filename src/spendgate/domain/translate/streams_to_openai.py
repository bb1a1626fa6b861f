"""Streams: Anthropic events → OpenAI ``chat.completion.chunk`` SSE."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from spendgate.domain.pricing import Usage
from spendgate.domain.translate._common import Json, _load
from spendgate.domain.translate.responses import (
    anthropic_error_to_openai,
    finish_reason_from_anthropic,
)
from spendgate.domain.translate.sse import SSEDecoder, SSEEvent, encode_sse
from spendgate.domain.translate.usage import _openai_usage, _UsageFields

_OPENAI_DONE = b"data: [DONE]\n\n"


class AnthropicToOpenAIStream:
    """Converts an Anthropic SSE stream into OpenAI ``chat.completion.chunk`` SSE.

    ``feed`` takes raw upstream bytes and returns the bytes to send to the client (possibly
    empty); ``close`` ends the stream (final chunk, usage chunk when ``include_usage``,
    ``[DONE]``) if the upstream did not. ``usage`` holds the usage seen so far.
    """

    def __init__(self, *, created: int, model: str | None = None, include_usage: bool = True):
        self.created = created
        self.model = model
        self.include_usage = include_usage
        self.id = ""
        self.finish_reason: str | None = None
        self.done = False
        self.error: Mapping[str, Any] | None = None
        self._usage = _UsageFields()
        self._decoder = SSEDecoder()
        self._tools: dict[int, int] = {}  # Anthropic block index → OpenAI tool-call index

    @property
    def usage(self) -> Usage | None:
        return self._usage.usage

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(self._convert(self._decoder.feed(chunk)))

    def close(self) -> bytes:
        out = list(self._convert(self._decoder.flush()))
        if not self.done:
            out.extend(self._finish())
        return b"".join(out)

    def _convert(self, events: list[SSEEvent]) -> Iterator[bytes]:
        for event in events:
            yield from self.feed_event(event)

    def feed_event(self, event: SSEEvent) -> list[bytes]:
        if self.done:
            return []
        obj = _load(event.data)
        if not isinstance(obj, dict):
            return []
        kind = event.event or obj.get("type")
        if kind == "content_block_delta":
            delta = obj.get("delta")
            if not isinstance(delta, dict):
                return []
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                index = self._tools.get(obj.get("index", -1))
                if index is None:
                    return []
                arguments = delta.get("partial_json", "")
                call = {"index": index, "function": {"arguments": arguments}}
                return [self._chunk({"tool_calls": [call]})]
            return []  # thinking / signature deltas have no OpenAI counterpart
        if kind == "content_block_start":
            block = obj.get("content_block")
            if not isinstance(block, dict):
                return []
            if block.get("type") == "tool_use":
                index = len(self._tools)
                self._tools[obj.get("index", index)] = index
                call = {
                    "index": index,
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "message_start":
            message = obj.get("message")
            if isinstance(message, dict):
                self.id = str(message.get("id", ""))
                self.model = self.model or str(message.get("model", ""))
                self._usage.merge(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "message_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason") is not None:
                self.finish_reason = finish_reason_from_anthropic(delta["stop_reason"])
            self._usage.merge(obj.get("usage"))
            return []
        if kind == "message_stop":
            return self._finish()
        if kind == "error":
            self.done = True
            self.error = obj.get("error") if isinstance(obj.get("error"), dict) else {}
            return [encode_sse(anthropic_error_to_openai(obj, 500))]
        if kind == "ping":
            return [b": ping\n\n"]  # an SSE comment keeps idle connections open
        return []

    def _chunk(self, delta: Json, finish_reason: str | None = None) -> bytes:
        return encode_sse(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model or "",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
        )

    def _finish(self) -> list[bytes]:
        self.done = True
        out = [self._chunk({}, self.finish_reason or "stop")]
        usage = self.usage
        if self.include_usage and usage is not None:
            out.append(
                encode_sse(
                    {
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model or "",
                        "choices": [],
                        "usage": _openai_usage(usage),
                    }
                )
            )
        out.append(_OPENAI_DONE)
        return out
