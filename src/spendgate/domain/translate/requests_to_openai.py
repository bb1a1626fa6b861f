"""Requests: an Anthropic messages body as an OpenAI chat-completions body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spendgate.domain.translate._common import (
    Json,
    _an_blocks,
    _dump,
    _list,
    _mapping,
    _max_tokens,
    _str,
)
from spendgate.domain.translate.errors import TranslationError

_TOOL_CHOICE_TO_OPENAI = {"auto": "auto", "none": "none", "any": "required"}


def anthropic_request_to_openai(
    body: Mapping[str, Any],
    *,
    model: str | None = None,
    max_tokens_field: str = "max_tokens",
) -> Json:
    """An Anthropic messages body as an OpenAI chat-completions body.

    ``max_tokens_field``: ``max_tokens`` (understood by every OpenAI-compatible server) or
    ``max_completion_tokens`` (required by OpenAI's reasoning models). A streamed request
    asks for ``stream_options.include_usage`` so the usage arrives at the end of the stream.
    """
    body = _mapping(body, "body")
    messages: list[Json] = []
    system = body.get("system")
    if system:
        text = system if isinstance(system, str) else _an_text(system, "system")
        messages.append({"role": "system", "content": text})
    for index, raw in enumerate(_list(body.get("messages"), "messages")):
        where = f"messages[{index}]"
        message = _mapping(raw, where)
        role = message.get("role")
        if role == "user":
            messages.extend(_an_user_messages(message.get("content"), f"{where}.content"))
        elif role == "assistant":
            messages.append(_an_assistant_message(message.get("content"), f"{where}.content"))
        else:
            raise TranslationError(f"{where}.role: unsupported role {role!r}", f"{where}.role")

    out: Json = {"model": model or _str(body.get("model"), "model"), "messages": messages}
    max_tokens = _max_tokens(body)
    if max_tokens is not None:
        out[max_tokens_field] = max_tokens
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value
    stop = body.get("stop_sequences")
    if isinstance(stop, list) and stop:
        out["stop"] = [_str(item, "stop_sequences") for item in stop]
    if body.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    tools = [_an_tool(raw, f"tools[{i}]") for i, raw in enumerate(body.get("tools") or [])]
    if tools:
        out["tools"] = tools
    _an_tool_choice(body.get("tool_choice"), out)
    return out


def _an_text(content: object, where: str) -> str:
    parts = []
    for index, block in enumerate(_an_blocks(content, where)):
        if block.get("type") != "text":
            raise TranslationError(f"{where}[{index}]: only text is supported here", where)
        parts.append(_str(block.get("text"), f"{where}[{index}].text"))
    return "\n\n".join(parts)


def _an_image(block: Mapping[str, Any], where: str) -> Json:
    source = _mapping(block.get("source"), f"{where}.source")
    kind = source.get("type")
    if kind == "base64":
        media_type = _str(source.get("media_type"), f"{where}.source.media_type")
        data = _str(source.get("data"), f"{where}.source.data")
        url = f"data:{media_type};base64,{data}"
    elif kind == "url":
        url = _str(source.get("url"), f"{where}.source.url")
    else:
        raise TranslationError(f"{where}.source.type: unsupported image source {kind!r}", where)
    return {"type": "image_url", "image_url": {"url": url}}


def _an_document(block: Mapping[str, Any], where: str) -> Json:
    """A document as OpenAI content: a text document as text (after its title and context),
    a base64 PDF as a ``file`` part. OpenAI chat has no URL or Anthropic file id input."""
    source = block.get("source")
    if not isinstance(source, Mapping):
        raise TranslationError(f"{where}: a document needs a source", where)
    kind = source.get("type")
    title = block.get("title")
    if kind == "base64" and source.get("media_type") == "application/pdf":
        data = _str(source.get("data"), f"{where}.source.data")
        filename = title if isinstance(title, str) and title else "document.pdf"
        return {
            "type": "file",
            "file": {"filename": filename, "file_data": f"data:application/pdf;base64,{data}"},
        }
    if kind == "text":
        text = _str(source.get("data"), f"{where}.source.data")
    elif kind == "content":
        text = _an_text(source.get("content"), f"{where}.source.content")
    else:
        raise TranslationError(f"{where}: document source {kind!r} is not supported", where)
    heading = [value for value in (title, block.get("context")) if isinstance(value, str) and value]
    return {"type": "text", "text": "\n\n".join([*heading, text])}


def _an_user_messages(content: object, where: str) -> list[Json]:
    """One Anthropic user turn: its tool results become OpenAI ``tool`` messages (which must
    directly follow the assistant's tool calls), the rest one user message after them."""
    tool_messages: list[Json] = []
    parts: list[Json] = []
    for index, block in enumerate(_an_blocks(content, where)):
        here = f"{where}[{index}]"
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": _str(block.get("text"), f"{here}.text")})
        elif kind == "image":
            parts.append(_an_image(block, here))
        elif kind == "document":
            parts.append(_an_document(block, here))
        elif kind == "tool_result":
            text, images = _an_tool_result(block, here)
            tool_messages.append(
                {
                    "role": "tool",
                    "tool_call_id": _str(block.get("tool_use_id"), f"{here}.tool_use_id"),
                    "content": text,
                }
            )
            # OpenAI tool messages carry text only: images move to the user message.
            parts.extend(images)
        else:
            raise TranslationError(f"{here}: content type {kind!r} is not supported", here)
    out = tool_messages
    if parts:
        if all(part["type"] == "text" for part in parts):
            out.append({"role": "user", "content": "\n\n".join(p["text"] for p in parts)})
        else:
            out.append({"role": "user", "content": parts})
    return out


def _an_tool_result(block: Mapping[str, Any], where: str) -> tuple[str, list[Json]]:
    content = block.get("content")
    if content is None:
        return "", []
    texts: list[str] = []
    images: list[Json] = []
    for index, inner in enumerate(_an_blocks(content, f"{where}.content")):
        here = f"{where}.content[{index}]"
        if inner.get("type") == "text":
            texts.append(_str(inner.get("text"), f"{here}.text"))
        elif inner.get("type") == "image":
            images.append(_an_image(inner, here))
        else:
            raise TranslationError(f"{here}: content type {inner.get('type')!r} unsupported", here)
    return "\n\n".join(texts), images


def _an_assistant_message(content: object, where: str) -> Json:
    texts: list[str] = []
    calls: list[Json] = []
    for index, block in enumerate(_an_blocks(content, where)):
        here = f"{where}[{index}]"
        kind = block.get("type")
        if kind == "text":
            texts.append(_str(block.get("text"), f"{here}.text"))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": _str(block.get("id"), f"{here}.id"),
                    "type": "function",
                    "function": {
                        "name": _str(block.get("name"), f"{here}.name"),
                        "arguments": _dump(block.get("input", {})),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # provider-specific reasoning: OpenAI has no place for it
        else:
            raise TranslationError(f"{here}: content type {kind!r} is not supported", here)
    message: Json = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _an_tool(raw: object, where: str) -> Json:
    tool = _mapping(raw, where)
    if tool.get("type") not in (None, "custom"):
        raise TranslationError(f"{where}: server tool {tool.get('type')!r} unsupported", where)
    function: Json = {"name": _str(tool.get("name"), f"{where}.name")}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    schema = tool.get("input_schema")
    function["parameters"] = (
        dict(schema) if isinstance(schema, Mapping) else {"type": "object", "properties": {}}
    )
    return {"type": "function", "function": function}


def _an_tool_choice(raw: object, out: Json) -> None:
    if not isinstance(raw, Mapping):
        return
    kind = raw.get("type")
    if kind == "tool":
        name = _str(raw.get("name"), "tool_choice.name")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    elif isinstance(kind, str) and kind in _TOOL_CHOICE_TO_OPENAI:
        out["tool_choice"] = _TOOL_CHOICE_TO_OPENAI[kind]
    else:
        raise TranslationError(f"tool_choice.type: unsupported value {kind!r}", "tool_choice")
    if raw.get("disable_parallel_tool_use") is True and "tools" in out:
        out["parallel_tool_calls"] = False
