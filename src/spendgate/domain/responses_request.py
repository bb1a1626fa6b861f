"""An OpenAI Responses API body (``POST /v1/responses``) as a ``ChatRequest``.

Estimation, planning and budgets then treat it as any chat request. The same rule as chat
holds: everything the model reads is counted, and what cannot be sized is never free.
``instructions`` and every message item become messages; function calls and their outputs are
text; reasoning items are their summaries plus their encrypted content, sized; item and tool
types not known here are counted by their size (unknown items) or make the input unbounded
(hosted tools, whose fetched results the provider bills as input). State the provider holds
(``previous_response_id``, ``conversation``, a stored ``prompt``, ``item_reference`` items) is
input of unknown size: the request is marked ``stateful`` (it stays on its provider) and the
estimate unbounded (the model's context window is reserved). ``background`` is refused: its
usage is known only after the call returns, so it could not be settled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spendgate.domain.requests import (
    _OPENAI_SAMPLING,
    Attachment,
    AttachmentKind,
    ChatRequest,
    Message,
    Protocol,
    RequestError,
    _body,
    _check_int,
    _check_sampling,
    _content,
    _json_text,
    _optional_bool,
    _optional_int,
    _optional_list,
    _required_str,
)

__all__ = ["CLIENT_TOOL_TYPES", "MESSAGE_ROLES", "parse_responses"]

MESSAGE_ROLES = frozenset({"user", "assistant", "system", "developer"})
# Tools the client runs (their results come back as input items, sized there); any other tool
# type is hosted by the provider, which bills what it fetches as input.
CLIENT_TOOL_TYPES = frozenset({"function", "custom"})
# Top-level fields naming state the provider holds, read as input of unknown size.
_STORED_INPUT = ("previous_response_id", "conversation", "prompt")
_STORED = Attachment(AttachmentKind.STORED, None)


def parse_responses(body: Mapping[str, Any]) -> ChatRequest:
    body = _body(body)
    model = _required_str(body, "model")
    if body.get("background") not in (None, False):
        raise RequestError(
            "background: background responses are billed after the call returns, so the "
            "gateway cannot meter them; send the request without background",
            "background",
        )
    stateful: list[str] = []
    attachments: list[Attachment] = []
    referenced = False  # earlier input the provider holds: the request may carry none itself
    for field in _STORED_INPUT:
        value = body.get(field)
        if value is None:
            continue
        _check_reference(field, value)
        stateful.append(field)
        attachments.append(_STORED)
        referenced = True
    if _optional_bool(body, "store"):
        stateful.append("store")  # a later request may continue from it, on this provider
    messages: list[Message] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise RequestError("instructions: expected a string", "instructions")
        messages.append(Message("system", instructions))
    raw_input = body.get("input")
    if isinstance(raw_input, str):
        messages.append(Message("user", raw_input))
    elif isinstance(raw_input, list):
        for index, item in enumerate(raw_input):
            messages.append(_item(item, f"input[{index}]", attachments, stateful))
    elif raw_input is not None or not referenced:
        raise RequestError("input: expected a string or a list of input items", "input")
    if not messages:
        messages.append(Message("user", ""))
    tools = _optional_list(body, "tools")
    for index, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if not isinstance(kind, str):
            raise RequestError(f"tools[{index}].type: expected a string", f"tools[{index}].type")
        if kind not in CLIENT_TOOL_TYPES:
            attachments.append(_STORED)
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, str | Mapping):
        raise RequestError("tool_choice: expected a string or an object", "tool_choice")
    schema, json_mode = _text_format(body)
    definitions = [*tools, schema] if schema is not None else tools
    for field in ("reasoning", "metadata"):
        value = body.get(field)
        if value is not None and not isinstance(value, Mapping):
            raise RequestError(f"{field}: expected an object", field)
    _check_sampling(body, _OPENAI_SAMPLING)
    _check_int(body, "top_logprobs", 0, 20)
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        max_tokens=_optional_int(body, "max_output_tokens"),
        json_mode=json_mode,
        tools_text=_json_text(definitions) if definitions else "",
        tool_count=len(tools),
        stream=_optional_bool(body, "stream"),
        protocol=Protocol.RESPONSES,
        attachments=tuple(attachments),
        stateful=tuple(dict.fromkeys(stateful)),
    )


def _check_reference(field: str, value: object) -> None:
    """``previous_response_id`` is an id; ``conversation`` an id or ``{id}``; ``prompt`` an
    object naming a stored prompt."""
    if field == "previous_response_id" and isinstance(value, str) and value:
        return
    if field == "conversation" and (
        (isinstance(value, str) and value)
        or (isinstance(value, Mapping) and isinstance(value.get("id"), str))
    ):
        return
    if field == "prompt" and isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return
    raise RequestError(f"{field}: expected {_REFERENCE_SHAPES[field]}", field)


_REFERENCE_SHAPES = {
    "previous_response_id": "a non-empty string",
    "conversation": "a conversation id or an object with an id",
    "prompt": "an object with an id",
}


def _text_format(body: Mapping[str, Any]) -> tuple[object | None, bool]:
    """The JSON schema given to the model (its text is input) and whether JSON is asked."""
    text = body.get("text")
    if text is None:
        return None, False
    if not isinstance(text, Mapping):
        raise RequestError("text: expected an object", "text")
    form = text.get("format")
    if form is None:
        return None, False
    if not isinstance(form, Mapping) or not isinstance(form.get("type"), str):
        raise RequestError("text.format.type: expected a string", "text.format.type")
    kind = form["type"]
    if kind == "json_schema":
        return form.get("schema"), True
    return None, kind == "json_object"


def _item(raw: object, where: str, attachments: list[Attachment], stateful: list[str]) -> Message:
    """One input item as a message. A message may omit ``type`` (the "easy" form)."""
    if not isinstance(raw, Mapping):
        raise RequestError(f"{where}: expected an object", where)
    kind = raw.get("type", "message" if "role" in raw else None)
    if not isinstance(kind, str):
        raise RequestError(f"{where}.type: expected a string", f"{where}.type")
    if kind == "message":
        role = _required_str(raw, "role", where)
        if role not in MESSAGE_ROLES:
            roles = ", ".join(sorted(MESSAGE_ROLES))
            raise RequestError(f"{where}.role: {role!r} is not one of {roles}", f"{where}.role")
        if raw.get("content") is None:
            raise RequestError(f"{where}.content: required", f"{where}.content")
        return _content(raw["content"], f"{where}.content").message(role, attachments)
    if kind == "function_call":
        name = _required_str(raw, "name", where)
        arguments = raw.get("arguments")
        if not isinstance(arguments, str):
            raise RequestError(f"{where}.arguments: expected a string", f"{where}.arguments")
        _required_str(raw, "call_id", where)
        return Message("assistant", f"{name} {arguments}", tool_calls=1)
    if kind == "function_call_output":
        _required_str(raw, "call_id", where)
        output = raw.get("output")
        if output is None:
            raise RequestError(f"{where}.output: required", f"{where}.output")
        return _content(output, f"{where}.output").message("tool", attachments)
    if kind == "reasoning":
        return _reasoning(raw, where, attachments)
    if kind == "item_reference":
        _required_str(raw, "id", where)
        stateful.append("item_reference")
        attachments.append(_STORED)
        return Message("user", "")
    # A hosted tool's call passed back, or a type not known here: read by the model, so
    # bounded by its own size, never free (as an unknown content part).
    size = len(_json_text(raw).encode("utf-8", "surrogatepass"))
    attachments.append(Attachment(AttachmentKind.OTHER, size))
    return Message("user", "")


def _reasoning(raw: Mapping[str, Any], where: str, attachments: list[Attachment]) -> Message:
    """A reasoning item passed back: its summary (and any plain content) as text, its
    encrypted content sized as an unknown part (the tokens it decrypts to are not known)."""
    texts: list[str] = []
    for field in ("summary", "content"):
        parts = raw.get(field)
        if parts is None:
            continue
        if not isinstance(parts, list):
            raise RequestError(f"{where}.{field}: expected a list", f"{where}.{field}")
        for index, part in enumerate(parts):
            here = f"{where}.{field}[{index}]"
            text = part.get("text") if isinstance(part, Mapping) else None
            if not isinstance(text, str):
                raise RequestError(f"{here}.text: expected a string", f"{here}.text")
            texts.append(text)
    encrypted = raw.get("encrypted_content")
    if isinstance(encrypted, str) and encrypted:
        attachments.append(Attachment(AttachmentKind.OTHER, len(encrypted)))
    return Message("assistant", "\n".join(texts))
