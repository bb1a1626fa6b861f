"""OpenAI Chat Completions ⇄ Anthropic Messages: requests, responses, streams and usage.

Pure: dicts in, dicts (or SSE bytes) out; no clock (``created`` timestamps are passed in).
Used when a request of one protocol is served by a provider of the other kind. What cannot be
expressed on the other side raises ``TranslationError`` (a ``RequestError``: the gateway turns
it into a 400) rather than being dropped silently when dropping would change the answer
(``n > 1``, JSON mode, server tools, documents); fields that only tune sampling or logging
(``seed``, ``logprobs``, penalties, ``top_k``, thinking) are dropped. docs/providers.md lists
the coverage and the gaps.

Usage: the gateway's ``Usage.input_tokens`` counts *every* input token once and
``cached_input_tokens`` is the part of it read from cache. OpenAI already reports it that way
(``prompt_tokens`` includes ``prompt_tokens_details.cached_tokens``). Anthropic reports the
three input parts separately (``input_tokens`` excludes ``cache_read_input_tokens`` and
``cache_creation_input_tokens``), so they are added. Cache *writes* count as ordinary input
tokens at the normal input price: ``Usage`` has no cache-write field yet, so their 25 % (5 min)
or 100 % (1 h) surcharge is not charged (an under-count of at most that surcharge).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple, TypeGuard

import orjson

from spendgate.domain.pricing import Usage
from spendgate.domain.requests import Protocol, RequestError

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "AnthropicToOpenAIStream",
    "OpenAIToAnthropicStream",
    "SSEDecoder",
    "SSEEvent",
    "StreamObserver",
    "TranslationError",
    "anthropic_error_to_openai",
    "anthropic_request_to_openai",
    "anthropic_response_to_openai",
    "encode_sse",
    "openai_error_to_anthropic",
    "openai_request_to_anthropic",
    "openai_response_to_anthropic",
    "usage_from_anthropic",
    "usage_from_openai",
]

# Anthropic requires max_tokens; used when neither the request nor the model sets one.
DEFAULT_MAX_TOKENS = 4096

Json = dict[str, Any]


class TranslationError(RequestError):
    """The request uses something the other protocol cannot express."""


# ---------------------------------------------------------------------------------------
# Usage
# ---------------------------------------------------------------------------------------


def _is_map(value: object) -> TypeGuard[Mapping[str, Any]]:
    # dict first: what JSON parsing yields, and much cheaper than the ABC check alone.
    return isinstance(value, (dict, Mapping))


def _usage_object(obj: object) -> Mapping[str, Any] | None:
    """``obj`` is a usage object or a whole response / stream event holding one."""
    if not _is_map(obj):
        return None
    inner = obj.get("usage")
    if _is_map(inner):
        return inner
    message = obj.get("message")  # Anthropic message_start event
    if _is_map(message):
        usage = message.get("usage")
        if _is_map(usage):
            return usage
    return obj


def _count(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def usage_from_openai(obj: object) -> Usage | None:
    """Usage of an OpenAI response, chunk or usage object; None when it reports none."""
    usage = _usage_object(obj)
    if usage is None or ("prompt_tokens" not in usage and "completion_tokens" not in usage):
        return None
    prompt = _count(usage, "prompt_tokens")
    details = usage.get("prompt_tokens_details")
    cached = _count(details, "cached_tokens") if isinstance(details, Mapping) else 0
    return Usage(
        input_tokens=prompt,
        output_tokens=_count(usage, "completion_tokens"),
        cached_input_tokens=min(cached, prompt),  # already part of prompt_tokens
    )


def usage_from_anthropic(obj: object) -> Usage | None:
    """Usage of an Anthropic message, stream event or usage object; None when it has none.

    Anthropic's ``input_tokens`` excludes cache reads and cache writes: both are added, so
    every input token is counted once; cache reads are the cached part."""
    usage = _usage_object(obj)
    if usage is None or ("input_tokens" not in usage and "output_tokens" not in usage):
        return None
    cache_read = _count(usage, "cache_read_input_tokens")
    cache_write = _count(usage, "cache_creation_input_tokens")
    return Usage(
        input_tokens=_count(usage, "input_tokens") + cache_read + cache_write,
        output_tokens=_count(usage, "output_tokens"),
        cached_input_tokens=cache_read,
    )


def _openai_usage(usage: Usage) -> Json:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
    }


def _anthropic_usage(usage: Usage) -> Json:
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    return {
        "input_tokens": usage.input_tokens - cached,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


# ---------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TranslationError(f"{where}: expected an object", where)
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise TranslationError(f"{where}: expected a list", where)
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise TranslationError(f"{where}: expected a string", where)
    return value


def _parse_arguments(arguments: object) -> Any:
    """OpenAI tool-call arguments (a JSON string) as the object Anthropic's ``input`` needs.
    Models sometimes emit invalid JSON; it is kept (wrapped) rather than lost.

    The stdlib parser, not orjson: tool arguments are small, and orjson turns integers
    beyond 64 bits into floats (silently changing an id the model passed to a tool)."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return {"_arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"_arguments": arguments}


def _dump(value: object) -> str:
    """Tool input as OpenAI's arguments string (stdlib: orjson refuses big integers)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------------------------------
# Requests: OpenAI → Anthropic
# ---------------------------------------------------------------------------------------

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


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


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
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        # OpenAI's range is 0..2, Anthropic's 0..1: clamp rather than fail the request.
        out["temperature"] = min(float(temperature), 1.0)
    top_p = body.get("top_p")
    if isinstance(top_p, int | float) and not isinstance(top_p, bool):
        out["top_p"] = top_p
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = [_str(item, "stop") for item in stop]
    if body.get("stream") is True:
        out["stream"] = True
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}


def _oa_content_blocks(content: object, where: str) -> list[Json]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[Json] = []
    for index, raw in enumerate(_list(content, where)):
        here = f"{where}[{index}]"
        part = _mapping(raw, here)
        kind = part.get("type")
        if kind in ("text", "input_text"):
            text = _str(part.get("text"), f"{here}.text")
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "refusal":
            blocks.append({"type": "text", "text": _str(part.get("refusal"), f"{here}.refusal")})
        elif kind == "image_url":
            blocks.append(_oa_image(part.get("image_url"), f"{here}.image_url"))
        else:
            raise TranslationError(f"{here}: content type {kind!r} is not supported", here)
    return blocks


def _oa_image(image: object, where: str) -> Json:
    url = image if isinstance(image, str) else _mapping(image, where).get("url")
    url = _str(url, f"{where}.url")
    if url.startswith("data:"):
        header, sep, data = url.partition(",")
        media_type, _, encoding = header[5:].partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise TranslationError(f"{where}.url: only base64 data URLs are supported", where)
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


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


# ---------------------------------------------------------------------------------------
# Requests: Anthropic → OpenAI
# ---------------------------------------------------------------------------------------

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


def _an_blocks(content: object, where: str) -> list[Mapping[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [_mapping(raw, f"{where}[{i}]") for i, raw in enumerate(_list(content, where))]


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
    elif kind in _TOOL_CHOICE_TO_OPENAI:
        out["tool_choice"] = _TOOL_CHOICE_TO_OPENAI[kind]
    else:
        raise TranslationError(f"tool_choice.type: unsupported value {kind!r}", "tool_choice")
    if raw.get("disable_parallel_tool_use") is True and "tools" in out:
        out["parallel_tool_calls"] = False


# ---------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------

_FINISH_FROM_ANTHROPIC = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_STOP_FROM_OPENAI = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def finish_reason_from_anthropic(stop_reason: object) -> str | None:
    if stop_reason is None:
        return None
    return _FINISH_FROM_ANTHROPIC.get(str(stop_reason), "stop")


def stop_reason_from_openai(finish_reason: object) -> str | None:
    if finish_reason is None:
        return None
    return _STOP_FROM_OPENAI.get(str(finish_reason), "end_turn")


def anthropic_response_to_openai(
    body: Mapping[str, Any], *, created: int, model: str | None = None
) -> Json:
    """An Anthropic message as an OpenAI ``chat.completion``. ``created``: Unix seconds."""
    body = _mapping(body, "response")
    texts: list[str] = []
    calls: list[Json] = []
    for block in _an_blocks(body.get("content") or [], "content"):
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name", "")),
                        "arguments": _dump(block.get("input", {})),
                    },
                }
            )
    message: Json = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    out: Json = {
        "id": str(body.get("id", "")),
        "object": "chat.completion",
        "created": created,
        "model": model or str(body.get("model", "")),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason_from_anthropic(body.get("stop_reason")) or "stop",
            }
        ],
    }
    usage = usage_from_anthropic(body)
    if usage is not None:
        out["usage"] = _openai_usage(usage)
    return out


def openai_response_to_anthropic(body: Mapping[str, Any], *, model: str | None = None) -> Json:
    """An OpenAI ``chat.completion`` (its first choice) as an Anthropic message."""
    body = _mapping(body, "response")
    choices = body.get("choices") or [{}]
    choice = _mapping(choices[0], "choices[0]")
    message = _mapping(choice.get("message") or {}, "choices[0].message")
    content: list[Json] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    elif isinstance(text, list):
        joined = "".join(str(p.get("text", "")) for p in text if isinstance(p, Mapping))
        if joined:
            content.append({"type": "text", "text": joined})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})
    for call in message.get("tool_calls") or []:
        if not isinstance(call, Mapping):
            continue
        raw_function = call.get("function")
        function: Mapping[str, Any] = raw_function if isinstance(raw_function, Mapping) else {}
        content.append(
            {
                "type": "tool_use",
                "id": str(call.get("id", "")),
                "name": str(function.get("name", "")),
                "input": _parse_arguments(function.get("arguments")),
            }
        )
    usage = usage_from_openai(body) or Usage()
    return {
        "id": str(body.get("id", "")),
        "type": "message",
        "role": "assistant",
        "model": model or str(body.get("model", "")),
        "content": content,
        "stop_reason": stop_reason_from_openai(choice.get("finish_reason")) or "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(usage),
    }


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _error_message(body: object) -> tuple[str, str | None]:
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        kind = error.get("type")
        return str(error.get("message", "")), kind if isinstance(kind, str) else None
    return (str(error) if error is not None else "upstream error"), None


def openai_error_to_anthropic(body: object, status: int) -> Json:
    message, _ = _error_message(body)
    kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def anthropic_error_to_openai(body: object, status: int) -> Json:
    message, kind = _error_message(body)
    return {"error": {"message": message, "type": kind or "api_error", "code": None, "param": None}}


# ---------------------------------------------------------------------------------------
# Server-sent events
# ---------------------------------------------------------------------------------------


class SSEEvent(NamedTuple):
    """One server-sent event: its ``event:`` name (None when absent) and joined data.
    (A tuple: it is created per chunk on the streaming hot path.)"""

    event: str | None
    data: bytes


_DATA = b"data:"
_EVENT = b"event:"


class SSEDecoder:
    """Incremental SSE parser: feed it bytes as they arrive, in any chunking.

    Only complete events (ended by a blank line) are parsed, so no field state spans two
    ``feed`` calls: the unparsed tail simply waits in the buffer. A stream whose first line
    ends in CRLF is normalised to LF (a CR split from its LF waits in the tail).
    """

    __slots__ = ("_buffer", "_crlf")

    def __init__(self) -> None:
        self._buffer = b""
        self._crlf: bool | None = None  # decided at the first line end

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        crlf = self._crlf
        if crlf is None:
            first = buffer.find(b"\n")
            if first < 0:
                self._buffer = buffer
                return []
            crlf = self._crlf = first > 0 and buffer[first - 1 : first] == b"\r"
        if crlf:
            buffer = buffer.replace(b"\r\n", b"\n")
        events: list[SSEEvent] = []
        start = 0
        find = buffer.find
        new = tuple.__new__  # a NamedTuple's own constructor is a slow Python function
        while True:
            line_end = find(b"\n", start)
            if line_end < 0:
                break
            if buffer[line_end + 1 : line_end + 2] == b"\n":
                # A one-line event: the shape of every OpenAI chunk.
                line = buffer[start:line_end]
                start = line_end + 2
                if line.startswith(_DATA):
                    value = line[6:] if line[5:6] == b" " else line[5:]
                    events.append(new(SSEEvent, (None, value)))
                elif line and (event := _parse_block(line)) is not None:
                    events.append(event)
                continue
            end = find(b"\n\n", line_end)
            if end < 0:
                break
            block = buffer[start:end]
            start = end + 2
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        self._buffer = buffer[start:] if start else buffer
        return events

    def flush(self) -> list[SSEEvent]:
        """The event left when the stream ends without a final blank line."""
        events = self.feed(b"\n\n") if self._buffer.strip() else []
        self._buffer = b""
        return events


def _parse_block(block: bytes) -> SSEEvent | None:
    name: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
        # "id", "retry" and ":" comments carry nothing a translator needs.
    if not data and name is None:
        return None
    return SSEEvent(name, b"\n".join(data))


def encode_sse(payload: object, event: str | None = None) -> bytes:
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


_DONE = b"[DONE]"
_OPENAI_DONE = b"data: [DONE]\n\n"


def _load(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


class _UsageFields:
    """Anthropic stream usage: message_start holds the input counts, message_delta the
    (cumulative) output count and, in newer API versions, input counts again."""

    __slots__ = ("fields",)

    def __init__(self) -> None:
        self.fields: dict[str, int] = {}

    def merge(self, usage: object) -> None:
        if isinstance(usage, dict):
            for key, value in usage.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    self.fields[key] = value

    @property
    def usage(self) -> Usage | None:
        return usage_from_anthropic(self.fields) if self.fields else None


# ---------------------------------------------------------------------------------------
# Streams: Anthropic events → OpenAI chunks
# ---------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------
# Streams: OpenAI chunks → Anthropic events
# ---------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------
# Pass-through streams: usage and text, without translating
# ---------------------------------------------------------------------------------------


class StreamObserver:
    """Watches a stream that is passed through untouched, for its usage, its output text
    (to estimate usage when none arrives) and an in-stream error.

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
    def error(self) -> Mapping[str, Any] | None:
        self._scan()
        return self._error

    @property
    def output_text(self) -> str:
        self._scan()
        parts: list[str] = []
        extract = _anthropic_text if self.protocol is Protocol.ANTHROPIC else _openai_text
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

    def _event(self, data: bytes) -> None:
        # Substring tests (in C) pick the few events worth decoding.
        if b'"usage"' in data or b'"error"' in data:
            obj = _load(data)
            if not isinstance(obj, dict):
                return
            if isinstance(obj.get("error"), dict):
                self._error = obj["error"]
                return
            if self.protocol is Protocol.ANTHROPIC:
                usage = obj.get("usage")
                message = obj.get("message")
                if isinstance(message, dict):
                    usage = message.get("usage")
                self._anthropic.merge(usage)
                self._usage = self._anthropic.usage
            elif obj.get("usage") is not None:
                self._usage = usage_from_openai(obj)
        if data != _DONE:
            self._content.append(data)


def _openai_text(obj: dict[str, Any], parts: list[str]) -> None:
    for choice in obj.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        if isinstance(delta.get("content"), str):
            parts.append(delta["content"])
        for call in delta.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                for key in ("name", "arguments"):
                    if isinstance(function.get(key), str):
                        parts.append(function[key])


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
