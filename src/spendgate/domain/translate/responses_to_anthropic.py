"""Requests: an OpenAI Responses API body as an Anthropic messages body.

``instructions`` and system/developer messages → ``system``; message items → messages
(``input_text``/``output_text``/``refusal`` → text, ``input_image`` → image, an inline PDF
``input_file`` → document); ``function_call`` / ``function_call_output`` → ``tool_use`` /
``tool_result``; function tools → tools; ``max_output_tokens`` → ``max_tokens``. Reasoning
items are dropped (Anthropic's thinking blocks need its own signatures). What Anthropic cannot
do raises ``TranslationError`` naming the field: state held by OpenAI
(``previous_response_id``, ``conversation``, ``prompt``, ``store: true``, item references),
hosted tools and their calls, JSON output formats, files it cannot read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spendgate.domain.translate._common import Json, _list, _mapping, _parse_arguments, _str
from spendgate.domain.translate.errors import TranslationError
from spendgate.domain.translate.requests_to_anthropic import (
    _all_text,
    _append,
    _finish_anthropic_message,
    _join_text,
    _oa_content_blocks,
    _oa_function,
    _oa_sampling,
    _oa_tool_choice,
)

__all__ = ["responses_request_to_anthropic"]

_STATE_FIELDS = ("previous_response_id", "conversation", "prompt")
_SYSTEM_ROLES = frozenset({"system", "developer"})


def responses_request_to_anthropic(
    body: Mapping[str, Any], *, model: str, default_max_tokens: int
) -> Json:
    """A Responses body as an Anthropic messages body for ``model`` (the upstream id);
    ``default_max_tokens`` fills Anthropic's required ``max_tokens`` when none is asked."""
    body = _mapping(body, "body")
    for field in _STATE_FIELDS:
        if body.get(field) is not None:
            raise TranslationError(
                f"{field}: state stored at OpenAI cannot be used with an Anthropic model; "
                "send the whole conversation as input instead",
                field,
            )
    if body.get("store") is True:
        raise TranslationError(
            "store: an Anthropic model keeps no responses; send store: false (or omit it)",
            "store",
        )
    system: list[Json] = []
    messages: list[Json] = []
    instructions = body.get("instructions")
    if instructions is not None:
        text = _str(instructions, "instructions")
        if text:
            system.append({"type": "text", "text": text})
    raw_input = body.get("input")
    if isinstance(raw_input, str):
        _append(messages, "user", [{"type": "text", "text": raw_input}])
    else:
        for index, raw in enumerate(_list(raw_input, "input")):
            _item(_mapping(raw, f"input[{index}]"), f"input[{index}]", system, messages)
    out: Json = {
        "model": model,
        "messages": [_finish_anthropic_message(message) for message in messages],
        "max_tokens": _max_output_tokens(body) or default_max_tokens,
    }
    if system:
        out["system"] = _join_text(system) if _all_text(system) else system
    _options(body, out)
    raw_tools = _list(body.get("tools") or [], "tools")
    tools = [_tool(raw, f"tools[{index}]") for index, raw in enumerate(raw_tools)]
    if tools:
        out["tools"] = tools
    choice = _tool_choice(body)
    if choice is not None:
        out["tool_choice"] = choice
    return out


def _max_output_tokens(body: Mapping[str, Any]) -> int | None:
    value = body.get("max_output_tokens")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _options(body: Mapping[str, Any], out: Json) -> None:
    text = body.get("text")
    form = text.get("format") if isinstance(text, Mapping) else None
    if isinstance(form, Mapping) and form.get("type") not in (None, "text"):
        raise TranslationError(
            "text.format: JSON output formats are not supported by Anthropic models",
            "text.format",
        )
    _oa_sampling(body, out, body.get("safety_identifier") or body.get("user"))


def _item(item: Mapping[str, Any], where: str, system: list[Json], messages: list[Json]) -> None:
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        blocks = _oa_content_blocks(item.get("content"), f"{where}.content")
        if role in _SYSTEM_ROLES:
            system.extend(blocks)  # Anthropic has one top-level system prompt
        elif role in ("user", "assistant"):
            _append(messages, str(role), blocks)
        else:
            raise TranslationError(f"{where}.role: unsupported role {role!r}", f"{where}.role")
    elif kind == "function_call":
        block = {
            "type": "tool_use",
            "id": _str(item.get("call_id"), f"{where}.call_id"),
            "name": _str(item.get("name"), f"{where}.name"),
            "input": _parse_arguments(item.get("arguments")),
        }
        _append(messages, "assistant", [block])
    elif kind == "function_call_output":
        output = item.get("output")
        blocks = _oa_content_blocks(output, f"{where}.output")
        content: str | list[Json] = _join_text(blocks) if _all_text(blocks) else blocks
        result = {
            "type": "tool_result",
            "tool_use_id": _str(item.get("call_id"), f"{where}.call_id"),
            "content": content,
        }
        _append(messages, "user", [result])
    elif kind != "reasoning":
        raise TranslationError(
            f"{where}.type: {kind!r} items cannot be sent to an Anthropic model", f"{where}.type"
        )


def _tool(raw: object, where: str) -> Json:
    tool = _mapping(raw, where)
    if tool.get("type") != "function":
        raise TranslationError(
            f"{where}.type: only function tools can go to an Anthropic model (not "
            f"{tool.get('type')!r})",
            f"{where}.type",
        )
    return _oa_function(tool, where)  # a chat tool's ``function``, flattened


def _tool_choice(body: Mapping[str, Any]) -> Json | None:
    raw = body.get("tool_choice")
    if isinstance(raw, Mapping) and raw.get("type") != "function":
        raise TranslationError(
            "tool_choice: only a function can be forced on an Anthropic model", "tool_choice"
        )
    return _oa_tool_choice(body)
