"""Parsing OpenAI Chat Completions and Anthropic Messages bodies into a ChatRequest."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from spendgate.domain.requests import (
    Attachment,
    AttachmentKind,
    ChatRequest,
    Message,
    Protocol,
    RequestError,
)

IMAGE_URL = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
ANTHROPIC_IMAGE = {
    "type": "image",
    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "metric": {"type": "boolean"}},
            "required": ["city"],
        },
    },
}


def openai(**body: Any) -> ChatRequest:
    payload: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
    payload.update(body)
    return ChatRequest.from_openai(payload)


def anthropic(**body: Any) -> ChatRequest:
    payload: dict[str, Any] = {
        "model": "claude-sonnet-4",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    payload.update(body)
    return ChatRequest.from_anthropic(payload)


# --- OpenAI ---------------------------------------------------------------------------


def test_openai_plain_text_messages() -> None:
    request = openai(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2 + 2?"},
        ]
    )
    assert request.model == "gpt-4o"
    assert request.protocol is Protocol.OPENAI
    assert request.messages == (Message("system", "Be brief."), Message("user", "What is 2 + 2?"))
    assert request.last_user_text == "What is 2 + 2?"
    assert (request.max_tokens, request.json_mode, request.stream) == (None, False, False)
    assert (request.tools_text, request.tool_count, request.choices) == ("", 0, 1)
    assert not request.needs_tools
    assert not request.needs_vision


def test_openai_multi_part_content_joins_text_and_counts_images() -> None:
    request = openai(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare these two charts."},
                    IMAGE_URL,
                    {"type": "text", "text": "Which grew faster?"},
                    IMAGE_URL,
                ],
            }
        ]
    )
    (message,) = request.messages
    assert message.text == "Compare these two charts.\nWhich grew faster?"
    assert message.image_count == 2
    assert request.image_count == 2
    assert request.needs_vision


def test_openai_images_are_counted_across_messages() -> None:
    request = openai(
        messages=[
            {"role": "user", "content": [IMAGE_URL]},
            {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": [{"type": "text", "text": "And this?"}, IMAGE_URL]},
        ]
    )
    assert [message.image_count for message in request.messages] == [1, 0, 1]
    assert request.image_count == 2


def test_openai_tools_are_counted_and_rendered_as_json() -> None:
    request = openai(tools=[WEATHER_TOOL, {**WEATHER_TOOL, "function": {"name": "get_time"}}])
    assert request.tool_count == 2
    assert request.needs_tools
    assert json.loads(request.tools_text) == [
        WEATHER_TOOL,
        {**WEATHER_TOOL, "function": {"name": "get_time"}},
    ]
    # Real JSON, not a Python repr: booleans and strings as the model sees them.
    assert "True" not in request.tools_text
    assert '"get_weather"' in request.tools_text


def test_openai_deprecated_functions_are_counted_as_tools() -> None:
    request = openai(functions=[WEATHER_TOOL["function"]])
    assert request.tool_count == 1
    assert "get_weather" in request.tools_text


def test_openai_tools_text_keeps_non_ascii_unescaped() -> None:
    tool = {"type": "function", "function": {"name": "suche", "description": "Wetter für Köln"}}
    assert "Wetter für Köln" in openai(tools=[tool]).tools_text


@pytest.mark.parametrize(
    ("response_format", "json_mode"),
    [
        ({"type": "json_object"}, True),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}, True),
        ({"type": "text"}, False),
        (None, False),
    ],
)
def test_openai_json_mode_from_response_format(
    response_format: dict[str, Any] | None, json_mode: bool
) -> None:
    assert openai(response_format=response_format).json_mode is json_mode


def test_openai_max_completion_tokens_takes_precedence_over_max_tokens() -> None:
    assert openai(max_tokens=100).max_tokens == 100
    assert openai(max_completion_tokens=200).max_tokens == 200
    assert openai(max_tokens=100, max_completion_tokens=200).max_tokens == 200
    assert openai(max_tokens=300, max_completion_tokens=200).max_tokens == 200


def test_openai_stream_and_n() -> None:
    assert openai(stream=True).stream is True
    assert openai(stream=None).stream is False
    assert openai(n=3).choices == 3


def test_openai_assistant_tool_calls_count_and_contribute_their_text() -> None:
    arguments = '{"city": "Paris", "metric": true}'
    request = openai(
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 18}'},
        ]
    )
    assistant, tool = request.messages[1], request.messages[2]
    assert assistant.tool_calls == 1
    # The arguments string is used verbatim: re-encoding it would escape every quote.
    assert assistant.text == f"get_weather {arguments}"
    assert tool.role == "tool"
    assert tool.text == '{"temp_c": 18}\ncall_1'  # the call id is read too


def test_every_message_field_the_model_reads_counts() -> None:
    long_name = "n" * 5000
    request = openai(
        messages=[
            {"role": "user", "name": long_name, "content": "Hi"},
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "lookup", "arguments": '{"q": "x"}'},
            },
            {"role": "user", "content": "Hi", "future_field": {"notes": "read me"}},
        ]
    )
    named, legacy, future = request.messages
    assert named.text == f"Hi\n{long_name}"
    assert (legacy.text, legacy.tool_calls) == ('lookup {"q": "x"}', 1)
    assert future.text == 'Hi\n{"notes":"read me"}'


def test_a_response_schema_is_input() -> None:
    schema = {
        "name": "answer",
        "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
    }
    request = openai(response_format={"type": "json_schema", "json_schema": schema})
    assert request.json_mode
    assert request.tools_text == json.dumps([schema], separators=(",", ":"))


def test_openai_refusal_and_input_text_parts_are_text() -> None:
    request = openai(
        messages=[
            {"role": "user", "content": [{"type": "input_text", "text": "Do it."}]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]},
        ]
    )
    assert [message.text for message in request.messages] == ["Do it.", "I can't."]


PDF = base64.b64encode(b"%PDF-1.7 " * 100).decode()  # 900 bytes


def test_openai_files_and_audio_are_attachments() -> None:
    inline = {"filename": "q3.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}
    parts = [
        {"type": "file", "file": inline},
        {"type": "file", "file": {"file_id": "file-abc"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg" * 100, "format": "wav"}},
        {"type": "text", "text": "Compare them."},
    ]
    request = openai(messages=[{"role": "user", "content": parts}])
    assert request.messages[0].text == "q3.pdf\nCompare them."
    assert request.attachments == (
        Attachment(AttachmentKind.DOCUMENT, 900),
        Attachment(AttachmentKind.DOCUMENT, None),
        Attachment(AttachmentKind.AUDIO, 450),
    )


def test_a_text_file_is_read_as_its_text() -> None:
    data = base64.b64encode(b"Quarterly ledger: all green.").decode()
    part = {"type": "file", "file": {"file_data": f"data:text/plain;base64,{data}"}}
    request = openai(messages=[{"role": "user", "content": [part]}])
    assert request.messages[0].text == "Quarterly ledger: all green."
    assert request.attachments == ()


def test_unknown_part_types_are_attachments_sized_by_their_json() -> None:
    part = {"type": "video_url", "video_url": {"url": "https://example.com/a.mp4"}}
    request = openai(messages=[{"role": "user", "content": [part]}])
    size = len(json.dumps(part, separators=(",", ":")))
    assert request.attachments == (Attachment(AttachmentKind.OTHER, size),)


# --- Anthropic ------------------------------------------------------------------------


def test_anthropic_basic_request() -> None:
    request = anthropic(stream=True)
    assert request.protocol is Protocol.ANTHROPIC
    assert request.max_tokens == 1024
    assert request.stream is True
    assert request.json_mode is False
    assert request.messages == (Message("user", "Hi"),)


def test_anthropic_system_prompt_as_a_string() -> None:
    request = anthropic(system="You are terse.")
    assert request.messages[0] == Message("system", "You are terse.")
    assert request.messages[1] == Message("user", "Hi")
    assert request.last_user_text == "Hi"


def test_anthropic_system_prompt_as_blocks() -> None:
    blocks = [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Answer in French.", "cache_control": {"type": "ephemeral"}},
    ]
    request = anthropic(system=blocks)
    assert request.messages[0] == Message("system", "You are terse.\nAnswer in French.")


def test_anthropic_images_in_content_and_in_tool_results_are_counted() -> None:
    request = anthropic(
        messages=[
            {"role": "user", "content": [ANTHROPIC_IMAGE, {"type": "text", "text": "What is it?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me zoom."},
                    {"type": "tool_use", "id": "t1", "name": "zoom", "input": {"factor": 2}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [ANTHROPIC_IMAGE, {"type": "text", "text": "zoomed"}],
                    }
                ],
            },
        ]
    )
    user, assistant, result = request.messages
    assert (user.image_count, assistant.image_count, result.image_count) == (1, 0, 1)
    assert request.image_count == 2
    assert assistant.tool_calls == 1
    assert assistant.text == 'Let me zoom.\nzoom\n{"factor":2}'
    assert result.text == "zoomed"


def test_anthropic_tool_result_with_string_content() -> None:
    request = anthropic(
        messages=[
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42 °C"}],
            }
        ]
    )
    assert request.messages[0].text == "42 °C"


def test_anthropic_text_documents_are_read_as_text() -> None:
    blocks = [
        {"type": "document", "title": "Ledger", "context": "Q3 figures",
         "source": {"type": "text", "media_type": "text/plain", "data": "All green."}},
        {"type": "document",
         "source": {"type": "content", "content": [{"type": "text", "text": "Page two."},
                                                   ANTHROPIC_IMAGE]}},
        {"type": "document", "source": {"type": "base64", "media_type": "text/plain",
                                        "data": base64.b64encode(b"Page three.").decode()}},
        {"type": "text", "text": "Summarise."},
    ]  # fmt: skip
    request = anthropic(messages=[{"role": "user", "content": blocks}])
    message = request.messages[0]
    assert message.text == "Ledger\nQ3 figures\nAll green.\nPage two.\nPage three.\nSummarise."
    assert message.image_count == 1
    assert request.attachments == ()


def test_anthropic_pdfs_are_attachments_sized_when_inline() -> None:
    blocks = [
        {"type": "document",
         "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/q3.pdf"}},
        {"type": "document", "source": {"type": "file", "file_id": "file_011"}},
    ]  # fmt: skip
    # Also inside a tool result, where Anthropic accepts documents too.
    result = {"type": "tool_result", "tool_use_id": "t", "content": blocks[:1]}
    request = anthropic(
        system=[{"type": "text", "text": "Be brief."}, {"type": "search_result", "title": "x"}],
        messages=[{"role": "user", "content": [*blocks, result]}],
    )
    assert request.attachments == (
        Attachment(AttachmentKind.OTHER, 36),  # in the system prompt too
        Attachment(AttachmentKind.DOCUMENT, 900),
        Attachment(AttachmentKind.DOCUMENT, None),
        Attachment(AttachmentKind.DOCUMENT, None),
        Attachment(AttachmentKind.DOCUMENT, 900),
    )


def test_anthropic_thinking_is_text() -> None:
    thinking = {"type": "thinking", "thinking": "Let me add them.", "signature": "sig"}
    request = anthropic(
        messages=[
            {"role": "user", "content": "2 + 2?"},
            {"role": "assistant", "content": [thinking, {"type": "text", "text": "4"}]},
        ]
    )
    assert request.messages[1].text == "Let me add them.\n4"


def test_anthropic_tools_are_counted() -> None:
    tool = {
        "name": "get_weather",
        "description": "Current weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    request = anthropic(tools=[tool])
    assert request.tool_count == 1
    assert json.loads(request.tools_text) == [tool]


# --- malformed bodies -----------------------------------------------------------------


def param_of(parse: Any, body: Any) -> str | None:
    with pytest.raises(RequestError) as caught:
        parse(body)
    assert str(caught.value)  # a message a client can read
    param: str | None = caught.value.param
    return param


BASE = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"model": None}, "model"),
        ({"model": ""}, "model"),
        ({"model": 4}, "model"),
        ({"messages": None}, "messages"),
        ({"messages": "Hi"}, "messages"),
        ({"messages": {"role": "user"}}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": ["Hi"]}, "messages[0]"),
        ({"messages": [{"content": "Hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": {"text": "Hi"}}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": ["Hi"]}]}, "messages[0].content[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
            "messages[0].content[0].text",
        ),
        (
            {"messages": [{"role": "user", "content": [{"text": "no type"}]}]},
            "messages[0].content[0].type",
        ),
        (
            {"messages": [{"role": "assistant", "content": "x", "tool_calls": {"id": "1"}}]},
            "messages[0].tool_calls",
        ),
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_tokens": "100"}, "max_tokens"),
        ({"max_tokens": 10.5}, "max_tokens"),
        ({"max_completion_tokens": -5}, "max_completion_tokens"),
        # A bad max_tokens is reported even when max_completion_tokens overrides it.
        ({"max_completion_tokens": 10, "max_tokens": "x"}, "max_tokens"),
        ({"stream": "yes"}, "stream"),
        ({"stream": 1}, "stream"),
        ({"tools": {"name": "x"}}, "tools"),
        ({"response_format": "json_object"}, "response_format"),
        ({"n": 0}, "n"),
        (
            {"messages": [{"role": "user", "content": [{"type": "file", "file": "f"}]}]},
            "messages[0].content[0].file",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "file", "file": {"file_data": 1}}]}
                ]
            },
            "messages[0].content[0].file.file_data",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ]
            },
            "messages[0].content[0].input_audio.data",
        ),
    ],
)
def test_openai_malformed_bodies_name_the_parameter(change: dict[str, Any], param: str) -> None:
    assert param_of(ChatRequest.from_openai, {**BASE, **change}) == param


@pytest.mark.parametrize("body", [["model"], "text", None, 3])
def test_a_body_that_is_not_an_object_is_rejected(body: Any) -> None:
    assert param_of(ChatRequest.from_openai, body) is None
    assert param_of(ChatRequest.from_anthropic, body) is None


ANTHROPIC_BASE = {**BASE, "max_tokens": 100}


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_tokens": False}, "max_tokens"),
        ({"max_tokens": "1024"}, "max_tokens"),
        ({"model": None}, "model"),
        ({"messages": "Hi"}, "messages"),
        ({"messages": [7]}, "messages[0]"),
        ({"system": 5}, "system"),
        ({"system": [{"type": "text", "text": None}]}, "system[0].text"),
        ({"stream": "true"}, "stream"),
        ({"tools": "get_weather"}, "tools"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t", "content": 3}],
                    }
                ]
            },
            "messages[0].content[0].content",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "document"}]}]},
            "messages[0].content[0].source",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "document", "source": {"type": "text", "data": None}}],
                    }
                ]
            },
            "messages[0].content[0].source.data",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "thinking", "thinking": 1}]}]},
            "messages[0].content[0].thinking",
        ),
    ],
)
def test_anthropic_malformed_bodies_name_the_parameter(change: dict[str, Any], param: str) -> None:
    assert param_of(ChatRequest.from_anthropic, {**ANTHROPIC_BASE, **change}) == param


def test_anthropic_missing_max_tokens_is_an_error() -> None:
    with pytest.raises(RequestError, match="max_tokens") as caught:
        ChatRequest.from_anthropic(BASE)
    assert caught.value.param == "max_tokens"


def test_request_error_is_a_value_error() -> None:
    assert issubclass(RequestError, ValueError)
    assert RequestError("bad", "x").param == "x"
    assert RequestError("bad").param is None
