"""A chat request, normalised from the OpenAI Chat Completions or Anthropic Messages shape.

Parsing is pure and strict about types: a malformed body raises ``RequestError`` with the
offending parameter, which the gateway turns into a 400.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["ChatRequest", "Message", "Protocol", "RequestError"]


class Protocol(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


class RequestError(ValueError):
    """The request body is malformed; ``param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    text: str
    image_count: int = 0
    tool_calls: int = 0


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    json_mode: bool = False
    tools_text: str = ""
    tool_count: int = 0
    stream: bool = False
    protocol: Protocol = Protocol.OPENAI

    @property
    def image_count(self) -> int:
        return sum(message.image_count for message in self.messages)

    @property
    def needs_tools(self) -> bool:
        return self.tool_count > 0

    @property
    def needs_vision(self) -> bool:
        return self.image_count > 0

    @property
    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text
        return ""

    @classmethod
    def from_openai(cls, body: Mapping[str, Any]) -> ChatRequest:
        model = _required_str(body, "model")
        raw_messages = _required_list(body, "messages")
        messages = tuple(
            _openai_message(raw, f"messages[{index}]") for index, raw in enumerate(raw_messages)
        )
        max_tokens = _optional_int(body, "max_completion_tokens")
        if max_tokens is None:
            max_tokens = _optional_int(body, "max_tokens")
        response_format = body.get("response_format")
        json_mode = isinstance(response_format, Mapping) and response_format.get("type") in (
            "json_object",
            "json_schema",
        )
        tools = _optional_list(body, "tools")
        return cls(
            model=model,
            messages=messages,
            max_tokens=max_tokens,
            json_mode=json_mode,
            tools_text=_compact(tools) if tools else "",
            tool_count=len(tools),
            stream=_optional_bool(body, "stream"),
            protocol=Protocol.OPENAI,
        )

    @classmethod
    def from_anthropic(cls, body: Mapping[str, Any]) -> ChatRequest:
        model = _required_str(body, "model")
        raw_messages = _required_list(body, "messages")
        max_tokens = _optional_int(body, "max_tokens")
        if max_tokens is None:
            raise RequestError("max_tokens: field required", "max_tokens")
        system = body.get("system")
        prefix: tuple[Message, ...] = ()
        if system is not None:
            text, images, _ = _content(system, "system")
            prefix = (Message("system", text, images),)
        messages = prefix + tuple(
            _anthropic_message(raw, f"messages[{index}]") for index, raw in enumerate(raw_messages)
        )
        tools = _optional_list(body, "tools")
        return cls(
            model=model,
            messages=messages,
            max_tokens=max_tokens,
            json_mode=False,
            tools_text=_compact(tools) if tools else "",
            tool_count=len(tools),
            stream=_optional_bool(body, "stream"),
            protocol=Protocol.ANTHROPIC,
        )


def _openai_message(raw: object, where: str) -> Message:
    if not isinstance(raw, Mapping):
        raise RequestError(f"{where}: expected an object", where)
    role = _required_str(raw, "role", where)
    text, images, _ = _content(raw.get("content"), f"{where}.content")
    tool_calls = raw.get("tool_calls")
    calls = 0
    if isinstance(tool_calls, list):
        calls = len(tool_calls)
        text = text + _compact(tool_calls)
    return Message(role, text, images, calls)


def _anthropic_message(raw: object, where: str) -> Message:
    if not isinstance(raw, Mapping):
        raise RequestError(f"{where}: expected an object", where)
    role = _required_str(raw, "role", where)
    text, images, calls = _content(raw.get("content"), f"{where}.content")
    return Message(role, text, images, calls)


def _content(content: object, where: str) -> tuple[str, int, int]:
    """Text, image count and tool-use count of a message's content (string or parts)."""
    if content is None:
        return "", 0, 0
    if isinstance(content, str):
        return content, 0, 0
    if not isinstance(content, list):
        raise RequestError(f"{where}: expected a string or a list of content parts", where)
    texts: list[str] = []
    images = 0
    calls = 0
    for index, part in enumerate(content):
        if not isinstance(part, Mapping):
            raise RequestError(f"{where}[{index}]: expected an object", f"{where}[{index}]")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise RequestError(f"{where}[{index}].text: expected a string", where)
            texts.append(text)
        elif kind in ("image_url", "image", "input_image"):
            images += 1
        elif kind == "tool_use":
            calls += 1
            texts.append(_compact(part.get("input")))
        elif kind == "tool_result":
            inner, inner_images, _ = _content(part.get("content"), f"{where}[{index}].content")
            texts.append(inner)
            images += inner_images
    return "\n".join(texts), images, calls


def _compact(value: object) -> str:
    """A compact JSON-ish rendering, used only to estimate the tokens a structure costs."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "{" + ",".join(f'"{key}":{_compact(item)}' for key, item in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(_compact(item) for item in value) + "]"
    return str(value)


def _required_str(body: Mapping[str, Any], key: str, where: str = "") -> str:
    value = body.get(key)
    name = f"{where}.{key}" if where else key
    if not isinstance(value, str) or not value:
        raise RequestError(f"{name}: expected a non-empty string", name)
    return value


def _required_list(body: Mapping[str, Any], key: str) -> list[Any]:
    value = body.get(key)
    if not isinstance(value, list) or not value:
        raise RequestError(f"{key}: expected a non-empty list", key)
    return value


def _optional_list(body: Mapping[str, Any], key: str) -> list[Any]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RequestError(f"{key}: expected a list", key)
    return value


def _optional_int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(f"{key}: expected a positive integer", key)
    return value


def _optional_bool(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(f"{key}: expected a boolean", key)
    return value
