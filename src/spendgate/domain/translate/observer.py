"""Pass-through streams: usage, output text and errors, without translating."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spendgate.domain.pricing import Usage
from spendgate.domain.requests import Protocol
from spendgate.domain.translate._common import _DONE, _load
from spendgate.domain.translate.sse import SSEDecoder
from spendgate.domain.translate.usage import (
    _UsageFields,
    usage_from_openai,
    usage_from_responses,
)


class StreamObserver:
    """Watches a stream that is passed through untouched, for its usage, its output text
    (to estimate usage when none arrives) and an in-stream error. ``usage`` is the final
    usage only: None when the stream ended before it (see ``input_usage``).

    ``feed`` only keeps the chunk (a list append: nothing is parsed on the path of each
    chunk to the client). The kept bytes are parsed when ``usage``, ``output_text`` or
    ``error`` is read — normally once, when the stream ends — and then only the events that
    can hold usage or an error are JSON-decoded; content events are decoded only if the
    output text is asked for (usage missing, or a client that went away mid-stream).
    """

    __slots__ = ("_anthropic", "_chunks", "_content", "_decoder", "_error", "_usage", "protocol")

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self._chunks: list[bytes] = []
        self._decoder = SSEDecoder()
        self._content: list[bytes] = []  # raw data of events that may carry output text
        self._usage: Usage | None = None
        self._error: Mapping[str, Any] | None = None
        self._anthropic = _UsageFields()

    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)

    def close(self) -> None:
        self._scan()
        for event in self._decoder.flush():
            self._event(event.data)

    @property
    def usage(self) -> Usage | None:
        self._scan()
        return self._usage

    @property
    def input_usage(self) -> Usage | None:
        """What the provider reported before its final usage, when that never came (a stream
        cut before Anthropic's ``message_delta``: ``message_start``'s input counts; its
        output count is a placeholder, not what was streamed)."""
        self._scan()
        return self._anthropic.usage if self._usage is None else None

    @property
    def error(self) -> Mapping[str, Any] | None:
        self._scan()
        return self._error

    @property
    def output_text(self) -> str:
        self._scan()
        parts: list[str] = []
        extract = _TEXT_OF.get(self.protocol, _openai_text)
        for data in self._content:
            obj = _load(data)
            if isinstance(obj, dict):
                extract(obj, parts)
        return "".join(parts)

    def _scan(self) -> None:
        if not self._chunks:
            return
        joined = b"".join(self._chunks)
        self._chunks = []
        for event in self._decoder.feed(joined):
            self._event(event.data)

    def _responses_event(self, obj: dict[str, Any]) -> None:
        """A Responses API event: the terminal ones hold the response and its usage; an
        ``error`` event carries its fields at the top level."""
        kind = obj.get("type")
        if kind == "error":
            self._error = obj
        elif kind in RESPONSES_TERMINAL_EVENTS:
            self._usage = usage_from_responses(obj)
            response = obj.get("response")
            if kind == "response.failed" and isinstance(response, dict):
                error = response.get("error")
                self._error = error if isinstance(error, dict) else {"message": "failed"}

    def _event(self, data: bytes) -> None:
        # Substring tests (in C) pick the few events worth decoding.
        if b'"usage"' in data or b'"error"' in data:
            obj = _load(data)
            if not isinstance(obj, dict):
                return
            if isinstance(obj.get("error"), dict):
                self._error = obj["error"]
                return
            if self.protocol is Protocol.RESPONSES:
                self._responses_event(obj)
            elif self.protocol is Protocol.ANTHROPIC:
                message = obj.get("message")
                if isinstance(message, dict):  # message_start: the input counts only
                    self._anthropic.merge(message.get("usage"))
                elif obj.get("type") == "message_delta" and isinstance(obj.get("usage"), dict):
                    self._anthropic.merge(obj["usage"])  # the final, cumulative counts
                    self._usage = self._anthropic.usage
            elif obj.get("usage") is not None:
                self._usage = usage_from_openai(obj)
        if data != _DONE:
            self._content.append(data)


def _openai_text(obj: dict[str, Any], parts: list[str]) -> None:
    for choice in obj.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            if isinstance(choice, dict) and isinstance(choice.get("text"), str):
                parts.append(choice["text"])  # a legacy completion's chunk
            continue
        if isinstance(delta.get("content"), str):
            parts.append(delta["content"])
        for call in delta.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                for key in ("name", "arguments"):
                    if isinstance(function.get(key), str):
                        parts.append(function[key])


def _responses_text(obj: dict[str, Any], parts: list[str]) -> None:
    """Every streamed delta (output text, function-call arguments, reasoning summaries,
    kinds added later): what was generated so far, to estimate its tokens."""
    delta = obj.get("delta")
    if isinstance(delta, str):
        parts.append(delta)


def _anthropic_text(obj: dict[str, Any], parts: list[str]) -> None:
    if obj.get("type") == "content_block_delta":
        delta = obj.get("delta")
        if isinstance(delta, dict):
            for key in ("text", "partial_json", "thinking"):
                if isinstance(delta.get(key), str):
                    parts.append(delta[key])
    elif obj.get("type") == "content_block_start":
        block = obj.get("content_block")
        if isinstance(block, dict) and isinstance(block.get("name"), str):
            parts.append(block["name"])


_TEXT_OF = {
    Protocol.OPENAI: _openai_text,
    Protocol.ANTHROPIC: _anthropic_text,
    Protocol.RESPONSES: _responses_text,
}
# The events that end a Responses stream; each holds the response with its usage.
RESPONSES_TERMINAL_EVENTS = frozenset(
    {"response.completed", "response.incomplete", "response.failed"}
)
