"""Protocol-neutral core of a completion: the parsed call and the answer planned for it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from spendgate.mock_upstream.options import Controls, MockOptions
from spendgate.mock_upstream.textgen import (
    PromptMeter,
    generate_text,
    output_length,
    text_tokens,
    tool_arguments,
)

__all__ = [
    "ChatCall",
    "Ending",
    "Reply",
    "RequestError",
    "ToolSpec",
    "meter_content",
    "meter_tools",
    "model_and_messages",
    "pick_tool",
    "plan_reply",
    "split_chunks",
]

# Why an answer ended: cut at the token limit, finished, or a tool call. Each API has its own
# words for these (OpenAI's finish_reason, Anthropic's stop_reason).
Ending = Literal["length", "stop", "tool"]

# Content parts counted as IMAGE_TOKENS each (OpenAI and Anthropic type names), unless they
# are documents carrying their data inline (see _meter_document).
_MEDIA_PARTS = frozenset({"image_url", "input_audio", "file", "image", "document"})


class RequestError(ValueError):
    """The request is not a valid call of the API (answered 400 in the provider's envelope)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(slots=True)
class ToolSpec:
    name: str
    schema: Any


@dataclass(slots=True)
class ChatCall:
    """What the mock needs from a chat request, whichever API it came through."""

    model: str
    stream: bool
    include_usage: bool
    limit: int | None
    tool: ToolSpec | None
    prompt_tokens: int
    digest: bytes


@dataclass(slots=True)
class Reply:
    text: str
    """The text answer ("" when the answer is a tool call)."""
    tool_name: str | None
    arguments: str
    """JSON text of the tool call's arguments (cut short, so invalid, when truncated)."""
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    truncated: bool
    usage: bool
    """Whether the answer reports usage (``x-mock-no-usage`` turns it off)."""

    @property
    def ending(self) -> Ending:
        if self.truncated:
            return "length"
        return "stop" if self.tool_name is None else "tool"


def model_and_messages(
    body: dict[str, Any], model_error: str, messages_error: str
) -> tuple[str, list[Any]]:
    """The request's model and its non-empty message list; the errors are the API's words."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(model_error, "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(messages_error, "messages")
    return model, messages


def meter_content(content: Any, meter: PromptMeter) -> None:
    """Feed one message's content (a string or a list of parts/blocks) to the meter."""
    if isinstance(content, str):
        meter.text(content)
        return
    if not isinstance(content, list):
        return  # null content (an assistant turn holding only tool calls)
    for part in content:
        if isinstance(part, str):
            meter.text(part)
            continue
        if not isinstance(part, dict):
            raise RequestError("content parts must be objects", "messages")
        text = part.get("text")
        kind = part.get("type")
        if isinstance(text, str):
            meter.text(text)
        elif kind in ("document", "file") and _meter_document(part, meter):
            continue
        elif kind in _MEDIA_PARTS:
            meter.image()
        elif kind == "tool_use":
            meter.text(str(part.get("name", "")))
            meter.text(orjson.dumps(part.get("input")).decode())
        elif kind == "tool_result":
            meter_content(part.get("content"), meter)
        elif kind == "thinking" and isinstance(part.get("thinking"), str):
            meter.text(part["thinking"])


def _meter_document(part: dict[str, Any], meter: PromptMeter) -> bool:
    """A document that carries its data (Anthropic ``document`` with a ``text``, ``content``
    or ``base64`` source, OpenAI ``file`` with ``file_data``) is read as that much text, as a
    provider reads the whole file: the text, or the base64 string itself. False for a mere
    reference (a URL, a ``file_id``)."""
    source = part.get("source")
    if isinstance(source, dict):
        data = source.get("data")
        if source.get("type") in ("text", "base64") and isinstance(data, str):
            meter.text(data)
            return True
        if source.get("type") == "content":
            meter_content(source.get("content"), meter)
            return True
    file = part.get("file")
    if isinstance(file, dict) and isinstance(file.get("file_data"), str):
        meter.text(file["file_data"])
        return True
    return False


def meter_tools(body: dict[str, Any], meter: PromptMeter, not_a_list: str) -> list[Any]:
    """The request's tool definitions (none: ``[]``), metered: their JSON counts as prompt."""
    tools = body.get("tools")
    if not tools:
        return []
    if not isinstance(tools, list):
        raise RequestError(not_a_list, "tools")
    meter.raw_json(orjson.dumps(tools))
    return tools


def pick_tool(
    definitions: Iterable[Any], schema_key: str, wanted: object, unknown: str
) -> ToolSpec | None:
    """The first tool definition, or the one named ``wanted`` (``unknown``: the error if none is).

    A definition is an object with a string ``name`` and its arguments' JSON schema under
    ``schema_key``; anything else is skipped.
    """
    for definition in definitions:
        if not isinstance(definition, dict) or not isinstance(definition.get("name"), str):
            continue
        if wanted is None or definition["name"] == wanted:
            return ToolSpec(definition["name"], definition.get(schema_key))
    if wanted is not None:
        raise RequestError(unknown, "tool_choice")
    return None


def plan_reply(call: ChatCall, options: MockOptions, controls: Controls) -> Reply:
    """The deterministic answer: a text (or a tool call), cut at the call's token limit."""
    cached = min(controls.cached_tokens, call.prompt_tokens)
    usage = not controls.no_usage
    limit = call.limit
    if call.tool is not None:
        name = call.tool.name
        arguments = orjson.dumps(tool_arguments(call.tool.schema, call.digest)).decode()
        # A tool call's output is its name and arguments, counted as one text; a limit cuts
        # the arguments (what OpenAI does: invalid JSON and finish_reason "length").
        produced = name + arguments
        truncated = limit is not None and text_tokens(produced) > limit
        if truncated:
            assert limit is not None
            produced = produced.encode()[: 4 * limit].decode(errors="ignore")
            arguments = produced[len(name) :]
        return Reply(
            "", name, arguments, call.prompt_tokens, text_tokens(produced), cached, truncated, usage
        )
    if options.reply_text is not None:
        text = options.reply_text
        wanted = text_tokens(text)
    else:
        wanted = controls.output_tokens or output_length(call.digest, options.output_tokens)
        text = generate_text(call.digest, wanted)
    truncated = limit is not None and wanted > limit
    if truncated:
        assert limit is not None
        text = text[: 4 * limit]  # ASCII: 4 characters are 4 bytes, one token
    completion = min(wanted, limit) if limit is not None else wanted
    return Reply(text, None, "", call.prompt_tokens, completion, cached, truncated, usage)


def split_chunks(text: str, chunks: int) -> list[str]:
    """Cut a text into at most ``chunks`` consecutive non-empty pieces of similar size."""
    size = len(text)
    if size == 0:
        return []
    count = min(chunks, size)
    return [text[size * i // count : size * (i + 1) // count] for i in range(count)]
