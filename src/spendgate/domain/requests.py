"""A chat request, normalised from the OpenAI Chat Completions or Anthropic Messages shape.

Parsing is pure and strict about types: a malformed body raises ``RequestError`` with the
offending parameter, which the gateway turns into a 400. Everything the model reads as input
(message text, tool calls and results, tool schemas) ends up in some text field, because the
token estimate and therefore the budget reservation are computed from those fields: text left
out would be spent without being reserved.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
    # OpenAI ``n``: completions generated (and billed) per request; output bounds scale by it.
    choices: int = 1

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
        body = _body(body)
        model = _required_str(body, "model")
        raw_messages = _required_list(body, "messages")
        messages = tuple(
            _openai_message(raw, f"messages[{index}]") for index, raw in enumerate(raw_messages)
        )
        # Both are validated; the newer max_completion_tokens wins when both are set.
        max_completion_tokens = _optional_int(body, "max_completion_tokens")
        legacy_max_tokens = _optional_int(body, "max_tokens")
        max_tokens = (
            max_completion_tokens if max_completion_tokens is not None else legacy_max_tokens
        )
        response_format = body.get("response_format")
        if response_format is not None and not isinstance(response_format, Mapping):
            raise RequestError("response_format: expected an object", "response_format")
        json_mode = response_format is not None and response_format.get("type") in (
            "json_object",
            "json_schema",
        )
        stream_options = body.get("stream_options")
        if stream_options is not None:
            if not isinstance(stream_options, Mapping):
                raise RequestError("stream_options: expected an object", "stream_options")
            include_usage = stream_options.get("include_usage")
            if include_usage is not None and not isinstance(include_usage, bool):
                where = "stream_options.include_usage"
                raise RequestError(f"{where}: expected a boolean", where)
        # ``functions`` is the deprecated spelling of ``tools``; the model reads both.
        tools = _optional_list(body, "tools") + _optional_list(body, "functions")
        return cls(
            model=model,
            messages=messages,
            max_tokens=max_tokens,
            json_mode=json_mode,
            tools_text=_json_text(tools) if tools else "",
            tool_count=len(tools),
            stream=_optional_bool(body, "stream"),
            protocol=Protocol.OPENAI,
            choices=_optional_int(body, "n") or 1,
        )

    @classmethod
    def from_anthropic(cls, body: Mapping[str, Any]) -> ChatRequest:
        body = _body(body)
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
            tools_text=_json_text(tools) if tools else "",
            tool_count=len(tools),
            stream=_optional_bool(body, "stream"),
            protocol=Protocol.ANTHROPIC,
        )


def _body(body: object) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise RequestError("the request body must be a JSON object")
    return body


def _openai_message(raw: object, where: str) -> Message:
    if not isinstance(raw, Mapping):
        raise RequestError(f"{where}: expected an object", where)
    role = _required_str(raw, "role", where)
    text, images, _ = _content(raw.get("content"), f"{where}.content")
    tool_calls = raw.get("tool_calls")
    calls = 0
    if tool_calls is not None:
        if not isinstance(tool_calls, list):
            raise RequestError(f"{where}.tool_calls: expected a list", f"{where}.tool_calls")
        calls = len(tool_calls)
        text = "\n".join(filter(None, (text, *map(_tool_call_text, tool_calls))))
    return Message(role, text, images, calls)


def _tool_call_text(call: object) -> str:
    """What the model wrote for one OpenAI tool call: the function name and its arguments
    (already a JSON string, kept as is: encoding it again would escape every quote)."""
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping):
        return _json_text(call)
    name, arguments = function.get("name"), function.get("arguments")
    parts = (
        name if isinstance(name, str) else "",
        "" if arguments is None else _json_text(arguments),
    )
    return " ".join(filter(None, parts))


def _anthropic_message(raw: object, where: str) -> Message:
    if not isinstance(raw, Mapping):
        raise RequestError(f"{where}: expected an object", where)
    role = _required_str(raw, "role", where)
    text, images, calls = _content(raw.get("content"), f"{where}.content")
    return Message(role, text, images, calls)


# Content parts whose text the model reads, by part type, and the field holding it.
_TEXT_FIELDS = {"text": "text", "input_text": "text", "refusal": "refusal"}
_IMAGE_TYPES = frozenset({"image_url", "image", "input_image"})


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
        here = f"{where}[{index}]"
        if not isinstance(part, Mapping):
            raise RequestError(f"{here}: expected an object", here)
        kind = part.get("type")
        if not isinstance(kind, str):
            raise RequestError(f"{here}.type: expected a string", f"{here}.type")
        if kind in _TEXT_FIELDS:
            field = _TEXT_FIELDS[kind]
            text = part.get(field)
            if not isinstance(text, str):
                raise RequestError(f"{here}.{field}: expected a string", f"{here}.{field}")
            texts.append(text)
        elif kind in _IMAGE_TYPES:
            images += 1
        elif kind == "tool_use":
            calls += 1
            name = part.get("name")
            if isinstance(name, str):
                texts.append(name)
            texts.append(_json_text(part.get("input", {})))
        elif kind == "tool_result":
            inner, inner_images, _ = _content(part.get("content"), f"{here}.content")
            texts.append(inner)
            images += inner_images
    return "\n".join(texts), images, calls


def _json_text(value: object) -> str:
    """Compact JSON of a structure, used only to estimate the tokens it costs.

    Real JSON (not repr) so that quotes, ``true`` and ``null`` are counted as the provider
    will see them; non-ASCII stays as is (``\\uXXXX`` escapes would inflate the estimate).
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


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
