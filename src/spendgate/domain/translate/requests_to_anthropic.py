"""Requests: an OpenAI chat-completions body as an Anthropic messages body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spendgate.domain.translate._common import (
    Json,
    _list,
    _mapping,
    _max_tokens,
    _parse_arguments,
    _str,
)
from spendgate.domain.translate.errors import TranslationError

# Anthropic requires max_tokens; used when neither the request nor the model sets one.
DEFAULT_MAX_TOKENS = 4096

_TOOL_CHOICE_TO_ANTHROPIC = {"auto": "auto", "none": "none", "required": "any"}
_SYSTEM_ROLES = frozenset({"system", "developer"})


def openai_request_to_anthropic(
    body: Mapping[str, Any],
    *,
    model: str | None = None,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
) -> Json:
    """An OpenAI chat-completions body as an Anthropic messages body.

    ``model`` replaces the model id (the upstream's name for the routed model);
    ``default_max_tokens`` (the model's ``max_output_tokens``) fills Anthropic's required
    ``max_tokens`` when the request sets none.
    """
    body = _mapping(body, "body")
    raw_messages = _list(body.get("messages"), "messages")
    system: list[Json] = []
    messages: list[Json] = []
    for index, raw in enumerate(raw_messages):
        where = f"messages[{index}]"
        message = _mapping(raw, where)
        role = message.get("role")
        if role in _SYSTEM_ROLES:
            # Anthropic has one top-level system prompt: every system message is hoisted.
            system.extend(_oa_content_blocks(message.get("content"), f"{where}.content"))
        elif role == "user":
            _append(messages, "user", _oa_content_blocks(message.get("content"), where))
        elif role == "assistant":
            _append(messages, "assistant", _oa_assistant_blocks(message, where))
        elif role in ("tool", "function"):
            _append(messages, "user", [_oa_tool_result(message, where)])
        else:
            raise TranslationError(f"{where}.role: unsupported role {role!r}", f"{where}.role")

    out: Json = {
        "model": model or _str(body.get("model"), "model"),
        "messages": [_finish_anthropic_message(message) for message in messages],
        "max_tokens": _max_tokens(body) or default_max_tokens,
    }
    if system:
        out["system"] = _join_text(system) if _all_text(system) else system
    _oa_sampling_to_anthropic(body, out)
    tools = _oa_tools(body)
    if tools:
        out["tools"] = tools
    tool_choice = _oa_tool_choice(body)
    if tool_choice is not None:
        out["tool_choice"] = tool_choice
    return out


def _oa_sampling_to_anthropic(body: Mapping[str, Any], out: Json) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise TranslationError("n: Anthropic returns one completion per request", "n")
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") not in (None, "text"):
        raise TranslationError(
            "response_format: JSON mode is not supported by Anthropic upstreams",
            "response_format",
        )
    _oa_sampling(body, out, body.get("user"))
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = [_str(item, "stop") for item in stop]


def _oa_sampling(body: Mapping[str, Any], out: Json, user: object) -> None:
    """``temperature``, ``top_p``, ``stream`` and the end user, as both OpenAI APIs send them."""
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        # OpenAI's range is 0..2, Anthropic's 0..1: clamp rather than fail the request.
        out["temperature"] = min(float(temperature), 1.0)
    top_p = body.get("top_p")
    if isinstance(top_p, int | float) and not isinstance(top_p, bool):
        out["top_p"] = top_p
    if body.get("stream") is True:
        out["stream"] = True
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}


def _oa_content_blocks(content: object, where: str) -> list[Json]:
    """Chat content (a string or parts) as Anthropic blocks; the Responses API's parts too."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[Json] = []
    for index, raw in enumerate(_list(content, where)):
        here = f"{where}[{index}]"
        part = _mapping(raw, here)
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            text = _str(part.get("text"), f"{here}.text")
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "refusal":
            blocks.append({"type": "text", "text": _str(part.get("refusal"), f"{here}.refusal")})
        elif kind in ("image_url", "input_image"):  # the Responses API's: a URL string
            if part.get("image_url") is None:
                raise TranslationError(f"{here}: only an image_url can go to Anthropic", here)
            blocks.append(_oa_image(part["image_url"], f"{here}.image_url"))
        elif kind == "file":
            blocks.append(_oa_file(part.get("file"), f"{here}.file"))
        elif kind == "input_file":  # the Responses API's: the fields of ``file``
            blocks.append(_oa_file(part, here))
        else:
            raise TranslationError(f"{here}: content type {kind!r} is not supported", here)
    return blocks


def _oa_image(image: object, where: str) -> Json:
    url = image if isinstance(image, str) else _mapping(image, where).get("url")
    url = _str(url, f"{where}.url")
    if url.startswith("data:"):
        source = _base64_source(url)
        if source is None:
            raise TranslationError(f"{where}.url: only base64 data URLs are supported", where)
        return {"type": "image", "source": source}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _oa_file(file: object, where: str) -> Json:
    """An inline PDF (``file_data``) as an Anthropic document; an OpenAI ``file_id`` means
    nothing to Anthropic."""
    file = _mapping(file, where)
    data = file.get("file_data")
    if not isinstance(data, str):
        raise TranslationError(f"{where}: only inline file_data can go to Anthropic", where)
    source = _base64_source(data)
    if source is None or source["media_type"] != "application/pdf":
        raise TranslationError(f"{where}.file_data: only PDF files can go to Anthropic", where)
    block: Json = {"type": "document", "source": source}
    filename = file.get("filename")
    if isinstance(filename, str) and filename:
        block["title"] = filename
    return block


def _base64_source(url: str) -> Json | None:
    """A base64 ``data:`` URL as an Anthropic source (None: not one)."""
    header, sep, data = url.partition(",")
    media_type, _, encoding = header[5:].partition(";")
    if not header.startswith("data:") or not sep or encoding != "base64" or not media_type:
        return None
    return {"type": "base64", "media_type": media_type, "data": data}


def _oa_assistant_blocks(message: Mapping[str, Any], where: str) -> list[Json]:
    blocks = _oa_content_blocks(message.get("content"), f"{where}.content")
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        blocks.append({"type": "text", "text": refusal})
    calls = message.get("tool_calls")
    for index, raw in enumerate(_list(calls, f"{where}.tool_calls") if calls else []):
        here = f"{where}.tool_calls[{index}]"
        call = _mapping(raw, here)
        function = _mapping(call.get("function"), f"{here}.function")
        blocks.append(
            {
                "type": "tool_use",
                "id": _str(call.get("id"), f"{here}.id"),
                "name": _str(function.get("name"), f"{here}.function.name"),
                "input": _parse_arguments(function.get("arguments")),
            }
        )
    legacy = message.get("function_call")
    if isinstance(legacy, Mapping):
        name = _str(legacy.get("name"), f"{where}.function_call.name")
        blocks.append(
            {
                "type": "tool_use",
                "id": f"call_{name}",
                "name": name,
                "input": _parse_arguments(legacy.get("arguments")),
            }
        )
    return blocks


def _oa_tool_result(message: Mapping[str, Any], where: str) -> Json:
    if message.get("role") == "function":  # deprecated: results matched by name
        tool_use_id = f"call_{_str(message.get('name'), f'{where}.name')}"
    else:
        tool_use_id = _str(message.get("tool_call_id"), f"{where}.tool_call_id")
    blocks = _oa_content_blocks(message.get("content"), f"{where}.content")
    content: str | list[Json] = _join_text(blocks) if _all_text(blocks) else blocks
    return {"type": "tool_result", "tool_use_id": tool_use_id, "content": content}


def _append(messages: list[Json], role: str, blocks: list[Json]) -> None:
    """Consecutive messages of one role become one turn: Anthropic wants all tool results
    answering one assistant turn in a single user message."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": list(blocks)})


def _finish_anthropic_message(message: Json) -> Json:
    blocks: list[Json] = message["content"]
    # Tool results must open the user turn that answers a tool call.
    if message["role"] == "user" and any(b["type"] == "tool_result" for b in blocks):
        blocks.sort(key=lambda block: block["type"] != "tool_result")
    if len(blocks) == 1 and blocks[0]["type"] == "text":
        return {"role": message["role"], "content": blocks[0]["text"]}
    return message


def _all_text(blocks: list[Json]) -> bool:
    return all(block["type"] == "text" for block in blocks)


def _join_text(blocks: list[Json]) -> str:
    return "\n\n".join(block["text"] for block in blocks)


def _oa_tools(body: Mapping[str, Any]) -> list[Json]:
    tools: list[Json] = []
    for index, raw in enumerate(_list(body.get("tools") or [], "tools")):
        here = f"tools[{index}]"
        tool = _mapping(raw, here)
        if tool.get("type", "function") != "function":
            raise TranslationError(f"{here}.type: only function tools are supported", here)
        tools.append(_oa_function(tool.get("function"), f"{here}.function"))
    for index, raw in enumerate(_list(body.get("functions") or [], "functions")):
        tools.append(_oa_function(raw, f"functions[{index}]"))
    return tools


def _oa_function(raw: object, where: str) -> Json:
    function = _mapping(raw, where)
    tool: Json = {"name": _str(function.get("name"), f"{where}.name")}
    description = function.get("description")
    if isinstance(description, str) and description:
        tool["description"] = description
    parameters = function.get("parameters")
    tool["input_schema"] = (
        dict(parameters)
        if isinstance(parameters, Mapping)
        else {"type": "object", "properties": {}}
    )
    return tool


def _oa_tool_choice(body: Mapping[str, Any]) -> Json | None:
    raw = body.get("tool_choice", body.get("function_call"))
    choice: Json | None = None
    if isinstance(raw, str):
        if raw not in _TOOL_CHOICE_TO_ANTHROPIC:
            raise TranslationError(f"tool_choice: unsupported value {raw!r}", "tool_choice")
        choice = {"type": _TOOL_CHOICE_TO_ANTHROPIC[raw]}
    elif isinstance(raw, Mapping):
        function = raw.get("function", raw)
        name = function.get("name") if isinstance(function, Mapping) else None
        choice = {"type": "tool", "name": _str(name, "tool_choice.function.name")}
    if body.get("parallel_tool_calls") is False:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    return choice
