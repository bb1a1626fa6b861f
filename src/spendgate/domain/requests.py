"""A chat request, normalised from the OpenAI Chat Completions or Anthropic Messages shape.

Parsing is pure and strict about types: a malformed body raises ``RequestError`` with the
offending parameter, which the gateway turns into a 400. Everything the model reads as input
ends up in the request, because the token estimate and therefore the budget reservation are
computed from it: input left out would be spent without being reserved. Text (messages, tool
calls and results, tool schemas, text documents) goes to text fields; images are counted;
everything else the model reads (PDFs, files, audio, part types not known here) becomes an
``Attachment`` with its size, or with no size when the request only refers to it.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

__all__ = ["Attachment", "AttachmentKind", "ChatRequest", "Message", "Protocol", "RequestError"]


class Protocol(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    RESPONSES = "responses"  # OpenAI's Responses API (``POST /v1/responses``)
    # OpenAI's other request shapes (domain/endpoints.py): served by OpenAI-kind providers
    # only, never translated.
    EMBEDDINGS = "embeddings"
    COMPLETIONS = "completions"  # legacy text completions


class RequestError(ValueError):
    """The request body is malformed; ``param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class AttachmentKind(StrEnum):
    DOCUMENT = "document"  # a binary document (a PDF): billed as its text plus page images
    AUDIO = "audio"  # billed by duration
    OTHER = "other"  # a content part of a type not known here
    # Input the provider adds from what it holds or fetches (an earlier response, a
    # conversation, a stored prompt, a hosted tool's results): never sized in the request.
    STORED = "stored"


@dataclass(frozen=True, slots=True)
class Attachment:
    """Input the model reads that is neither text nor an image. ``size``: its bytes (decoded
    from base64 for documents and audio, the part's compact JSON for other kinds); ``None``
    when the request only refers to it (a file id, a URL)."""

    kind: AttachmentKind
    size: int | None


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
    # 0: the request generates no output at all (embeddings).
    choices: int = 1
    # Non-text input of every message (held per request: the estimate needs no more, and
    # plain-text messages stay as cheap to build as they were).
    attachments: tuple[Attachment, ...] = ()
    # The fields tying the request to the provider that holds its state (Responses API:
    # ``previous_response_id``, ``conversation``, ``store``…): it may not move to another one.
    stateful: tuple[str, ...] = ()
    # Input given as token ids (embeddings, legacy completions): counted exactly, unframed.
    token_ids: int = 0

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
        attachments: list[Attachment] = []
        messages = tuple(
            _openai_message(raw, f"messages[{index}]", attachments)
            for index, raw in enumerate(raw_messages)
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
        # A JSON schema is given to the model with the prompt: its text counts as input.
        schema = response_format.get("json_schema") if response_format is not None else None
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
        definitions = [*tools, schema] if schema is not None else tools
        _check_sampling(body, _OPENAI_SAMPLING)
        _check_int(body, "seed", None)
        _check_int(body, "top_logprobs", 0, 20)
        _optional_bool(body, "logprobs")
        _check_stop(body, "stop", _MAX_OPENAI_STOPS)
        choices = _optional_int(body, "n") or 1
        if choices > _MAX_CHOICES:
            raise RequestError(f"n: at most {_MAX_CHOICES}", "n")
        return cls(
            model=model,
            messages=messages,
            max_tokens=max_tokens,
            json_mode=json_mode,
            tools_text=_json_text(definitions) if definitions else "",
            tool_count=len(tools),
            stream=_optional_bool(body, "stream"),
            protocol=Protocol.OPENAI,
            choices=choices,
            attachments=tuple(attachments),
        )

    @classmethod
    def from_responses(cls, body: Mapping[str, Any]) -> ChatRequest:
        """An OpenAI Responses API body (``responses_request``; imported here because it
        builds on this module)."""
        from spendgate.domain.responses_request import parse_responses

        return parse_responses(body)

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
        attachments: list[Attachment] = []
        if system is not None:
            prefix = (_content(system, "system").message("system", attachments),)
        last = len(raw_messages) - 1
        messages = prefix + tuple(
            _anthropic_message(raw, f"messages[{index}]", attachments, final=index == last)
            for index, raw in enumerate(raw_messages)
        )
        _check_sampling(body, _ANTHROPIC_SAMPLING)
        _check_int(body, "top_k", 0)
        _check_stop(body, "stop_sequences", None)
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
            attachments=tuple(attachments),
        )


def _body(body: object) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise RequestError("the request body must be a JSON object")
    return body


def _openai_message(raw: object, where: str, attachments: list[Attachment]) -> Message:
    if not isinstance(raw, Mapping):
        raise RequestError(f"{where}: expected an object", where)
    role = _role(raw, where, _OPENAI_ROLES)
    raw_content = raw.get("content")
    if len(raw) == 2 and isinstance(raw_content, str) and role != "tool":
        return Message(role, raw_content)  # most messages: plain text, nothing to gather
    if raw_content is None and not (
        role == "assistant" and (raw.get("tool_calls") or raw.get("function_call"))
    ):
        # Only an assistant message that calls a tool may go without content.
        raise RequestError(f"{where}.content: required for a {role} message", f"{where}.content")
    if role == "tool" and not isinstance(raw.get("tool_call_id"), str):
        where_id = f"{where}.tool_call_id"
        raise RequestError(f"{where_id}: required for a tool message", where_id)
    content = _content(raw_content, f"{where}.content")
    tool_calls = raw.get("tool_calls")
    if tool_calls is not None:
        if not isinstance(tool_calls, list):
            raise RequestError(f"{where}.tool_calls: expected a list", f"{where}.tool_calls")
        content.calls = len(tool_calls)
        content.texts.extend(map(_tool_call_text, tool_calls))
    # The rest is read by the model too (``name``, the legacy ``function_call``, fields not
    # known today): counted as its text, never skipped.
    for field, value in raw.items():
        if field in _OPENAI_MESSAGE_PARTS or value is None:
            continue
        if field == "function_call":
            content.calls += 1
            content.texts.append(_tool_call_text({"function": value}))
        else:
            content.texts.append(value if isinstance(value, str) else _json_text(value))
    return content.message(role, attachments)


_OPENAI_MESSAGE_PARTS = frozenset({"role", "content", "tool_calls"})


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


def _anthropic_message(
    raw: object, where: str, attachments: list[Attachment], *, final: bool
) -> Message:
    if not isinstance(raw, Mapping):
        raise RequestError(f"{where}: expected an object", where)
    role = _role(raw, where, _ANTHROPIC_ROLES)
    content = raw.get("content")
    # Anthropic refuses empty content but for a final assistant message (a prefill).
    if content is None or (not content and not (final and role == "assistant")):
        raise RequestError(
            f"{where}.content: required and non-empty (only a final assistant message may be "
            "empty)",
            f"{where}.content",
        )
    if isinstance(content, str):
        return Message(role, content)  # most messages: plain text, nothing to gather
    return _content(content, f"{where}.content").message(role, attachments)


# Content parts whose text the model reads, by part type, and the field holding it.
_TEXT_FIELDS = {
    "text": "text",
    "input_text": "text",
    "output_text": "text",
    "refusal": "refusal",
    "thinking": "thinking",
}
_IMAGE_TYPES = frozenset({"image_url", "image", "input_image"})


class _Content:
    """What one message's content holds, gathered part by part."""

    __slots__ = ("attachments", "calls", "images", "texts")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.images = 0
        self.calls = 0
        self.attachments: list[Attachment] = []

    def add(self, inner: _Content) -> None:
        self.texts.extend(inner.texts)
        self.images += inner.images
        self.attachments.extend(inner.attachments)

    def message(self, role: str, attachments: list[Attachment]) -> Message:
        """The message, its attachments added to the request's."""
        attachments.extend(self.attachments)
        return Message(role, "\n".join(filter(None, self.texts)), self.images, self.calls)


def _content(content: object, where: str) -> _Content:
    """Text, images, tool uses and attachments of a message's content (string or parts)."""
    if content is None:
        return _Content([])
    if isinstance(content, str):
        return _Content([content])
    if not isinstance(content, list):
        raise RequestError(f"{where}: expected a string or a list of content parts", where)
    found = _Content([])
    texts = found.texts
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
            found.images += 1
        elif kind == "tool_use":
            found.calls += 1
            name = part.get("name")
            if isinstance(name, str):
                texts.append(name)
            texts.append(_json_text(part.get("input", {})))
        elif kind == "tool_result":
            found.add(_content(part.get("content"), f"{here}.content"))
        elif kind == "document":
            _anthropic_document(part, here, found)
        elif kind == "file":
            _openai_file(_object(part, "file", here), f"{here}.file", found)
        elif kind == "input_file":  # the Responses API's file part: the fields of ``file``
            _openai_file(part, here, found)
        elif kind == "input_audio":
            audio = _object(part, "input_audio", here)
            data = _data(audio, "data", f"{here}.input_audio")
            found.attachments.append(Attachment(AttachmentKind.AUDIO, _base64_size(data)))
        else:
            # Unknown today, perhaps read tomorrow: bounded by its own size, never free.
            size = len(_json_text(part).encode("utf-8", "surrogatepass"))
            found.attachments.append(Attachment(AttachmentKind.OTHER, size))
    return found


def _anthropic_document(part: Mapping[str, Any], where: str, found: _Content) -> None:
    """An Anthropic ``document`` block: its title and context are read as text, and so is
    the document itself when it is text (a ``text`` or ``content`` source, or base64 of a
    ``text/*`` type); a PDF is an attachment, sized when inline, unsized when referred to
    (``url``, ``file``)."""
    for field in ("title", "context"):
        value = part.get(field)
        if isinstance(value, str):
            found.texts.append(value)
    source = _object(part, "source", where)
    kind = source.get("type")
    here = f"{where}.source"
    if kind == "text":
        found.texts.append(_data(source, "data", here))
    elif kind == "content":
        found.add(_content(source.get("content"), f"{here}.content"))
    elif kind == "base64":
        media_type = source.get("media_type")
        _inline_document(
            media_type if isinstance(media_type, str) else "", _data(source, "data", here), found
        )
    else:
        found.attachments.append(Attachment(AttachmentKind.DOCUMENT, None))


def _openai_file(file: Mapping[str, Any], where: str, found: _Content) -> None:
    """An OpenAI file (chat's ``file`` part's object, or a Responses ``input_file`` part):
    inline ``file_data`` (a base64 data URL), or a ``file_id`` / ``file_url`` it refers to."""
    name = file.get("filename")
    if isinstance(name, str):
        found.texts.append(name)
    data = file.get("file_data")
    if data is None:
        found.attachments.append(Attachment(AttachmentKind.DOCUMENT, None))
        return
    if not isinstance(data, str):
        raise RequestError(f"{where}.file_data: expected a string", f"{where}.file_data")
    header, comma, payload = data.partition(",")
    if comma and header.startswith("data:"):
        _inline_document(header[5:].partition(";")[0], payload, found)
    else:  # bare base64, as some clients send it
        _inline_document("", data, found)


def _inline_document(media_type: str, data: str, found: _Content) -> None:
    if media_type.startswith("text/"):
        try:
            found.texts.append(binascii.a2b_base64(data).decode("utf-8", "replace"))
            return
        except binascii.Error:
            pass  # not base64 after all: sized by its characters, as a binary document
    found.attachments.append(Attachment(AttachmentKind.DOCUMENT, _base64_size(data)))


def _base64_size(data: str) -> int:
    """Bytes that ``data`` decodes to (an upper bound when it has whitespace or padding)."""
    return len(data) * 3 // 4


def _object(part: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = part.get(key)
    if not isinstance(value, Mapping):
        raise RequestError(f"{where}.{key}: expected an object", f"{where}.{key}")
    return value


def _data(source: Mapping[str, Any], key: str, where: str) -> str:
    value = source.get(key)
    if not isinstance(value, str):
        raise RequestError(f"{where}.{key}: expected a string", f"{where}.{key}")
    return value


def _json_text(value: object) -> str:
    """Compact JSON of a structure, used only to estimate the tokens it costs.

    Real JSON (not repr) so that quotes, ``true`` and ``null`` are counted as the provider
    will see them; non-ASCII stays as is (``\\uXXXX`` escapes would inflate the estimate).
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


_OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_ANTHROPIC_ROLES = frozenset({"user", "assistant"})  # the system prompt is a top-level field
_MAX_CHOICES = 128  # OpenAI's bound on ``n``
_MAX_OPENAI_STOPS = 4

# Sampling parameters each provider refuses out of these ranges (inclusive).
_OPENAI_SAMPLING: Final = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
}
_ANTHROPIC_SAMPLING: Final = {"temperature": (0, 1), "top_p": (0, 1)}


def _role(message: Mapping[str, Any], where: str, roles: frozenset[str]) -> str:
    role = _required_str(message, "role", where)
    if role not in roles:
        raise RequestError(
            f"{where}.role: {role!r} is not one of {', '.join(sorted(roles))}", f"{where}.role"
        )
    return role


def _check_sampling(body: Mapping[str, Any], ranges: Mapping[str, tuple[int, int]]) -> None:
    for key, (low, high) in ranges.items():
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RequestError(f"{key}: expected a number", key)
        if not low <= value <= high:  # NaN fails this too
            raise RequestError(f"{key}: {value} is not between {low} and {high}", key)


def _check_int(body: Mapping[str, Any], key: str, low: int | None, high: int | None = None) -> None:
    value = body.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{key}: expected an integer", key)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise RequestError(f"{key}: {value} is not {bounds}", key)


def _check_stop(body: Mapping[str, Any], key: str, most: int | None) -> None:
    """Stop sequences: a list of strings (OpenAI also takes one string, and at most 4)."""
    value = body.get(key)
    if value is None or (most is not None and isinstance(value, str)):
        return
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        kind = "a string or a list of strings" if most is not None else "a list of strings"
        raise RequestError(f"{key}: expected {kind}", key)
    if most is not None and len(value) > most:
        raise RequestError(f"{key}: at most {most} sequences", key)


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
