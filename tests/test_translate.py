"""OpenAI ⇄ Anthropic translation (spendgate.domain.translate): requests, responses,
streams, usage. Where the official SDKs are installed, their own types and stream
accumulators check that what we produce is what a client can read."""

from __future__ import annotations

import itertools
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.domain.pricing import Usage
from spendgate.domain.requests import ChatRequest, Protocol, RequestError
from spendgate.domain.translate import (
    DEFAULT_MAX_TOKENS,
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    SSEDecoder,
    SSEEvent,
    StreamObserver,
    TranslationError,
    anthropic_error_to_openai,
    anthropic_request_to_openai,
    anthropic_response_to_openai,
    encode_sse,
    openai_error_to_anthropic,
    openai_request_to_anthropic,
    openai_response_to_anthropic,
    usage_from_anthropic,
    usage_from_openai,
)

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5Er"
    "kJggg=="
)
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


def oa_tool(name: str = "get_weather") -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": "Weather", "parameters": WEATHER_SCHEMA},
    }


# ======================================================================================
# Requests: OpenAI → Anthropic
# ======================================================================================


def test_openai_request_to_anthropic_full_conversation() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather where this photo was taken?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Lyon"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "21C"}],
            },
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [oa_tool()],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "temperature": 1.7,
        "top_p": 0.9,
        "stop": "END",
        "stream": True,
        "user": "alice",
        "seed": 7,
        "max_completion_tokens": 300,
        "max_tokens": 999,
    }
    out = openai_request_to_anthropic(body, model="claude-x", default_max_tokens=1000)
    assert out == {
        "model": "claude-x",
        "system": "Be brief.\n\nUse metric.",
        "max_tokens": 300,  # max_completion_tokens wins over the legacy field
        "temperature": 1.0,  # clamped into Anthropic's range
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "stream": True,
        "metadata": {"user_id": "alice"},
        "tools": [
            {"name": "get_weather", "description": "Weather", "input_schema": WEATHER_SCHEMA}
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather where this photo was taken?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather",
                     "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather",
                     "input": {"city": "Lyon"}},
                ],
            },
            {
                # Both tool results and the next user text form one user turn, results first.
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "21C"},
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
    }  # fmt: skip
    # The result is a valid Anthropic body as far as our own parser is concerned.
    parsed = ChatRequest.from_anthropic(out)
    assert parsed.image_count == 2
    assert parsed.tool_count == 1


def test_max_tokens_default_and_model_name() -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    assert openai_request_to_anthropic(body)["max_tokens"] == DEFAULT_MAX_TOKENS
    out = openai_request_to_anthropic(body, default_max_tokens=64_000)
    assert out == {"model": "gpt-4o", "max_tokens": 64_000,
                   "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    assert openai_request_to_anthropic({**body, "max_tokens": 5})["max_tokens"] == 5


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        (None, None, None),
    ],
)
def test_tool_choice_to_anthropic(choice: Any, parallel: bool | None, expected: Any) -> None:
    body: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [oa_tool("f")],
    }
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    assert openai_request_to_anthropic(body).get("tool_choice") == expected


def test_legacy_functions_and_function_messages() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": None,
             "function_call": {"name": "f", "arguments": '{"a": 1}'}},
            {"role": "function", "name": "f", "content": "done"},
        ],
        "functions": [{"name": "f", "parameters": {"type": "object"}}],
        "function_call": {"name": "f"},
    }  # fmt: skip
    out = openai_request_to_anthropic(body)
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object"}}]
    assert out["tool_choice"] == {"type": "tool", "name": "f"}
    assert out["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_f", "name": "f", "input": {"a": 1}}
    ]
    assert out["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_f", "content": "done"}
    ]


def test_invalid_tool_arguments_are_kept_not_lost() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "assistant", "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}},
                {"id": "d", "type": "function", "function": {"name": "f", "arguments": "[1]"}},
                {"id": "e", "type": "function", "function": {"name": "f", "arguments": ""}},
            ]},
        ],
    }  # fmt: skip
    blocks = openai_request_to_anthropic(body)["messages"][0]["content"]
    assert [b["input"] for b in blocks] == [{"_arguments": "{oops"}, {"_arguments": "[1]"}, {}]


def test_empty_messages_are_dropped_and_same_roles_merged() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "b"},
        ],
    }
    assert openai_request_to_anthropic(body)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]


def test_system_with_an_image_stays_a_block_list() -> None:
    # Not valid for Anthropic either, but we must not silently drop the image.
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": [
                {"type": "text", "text": "s"},
                {"type": "image_url", "image_url": "https://x.test/i.png"},
            ]},
            {"role": "user", "content": "u"},
        ],
    }  # fmt: skip
    assert openai_request_to_anthropic(body)["system"][1]["source"]["url"] == "https://x.test/i.png"


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"n": 2}, "n"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"messages": [{"role": "critic", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
         "messages[0][0]"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]},
         "messages[0][0].image_url"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"messages": "hi"}, "messages"),
        ({"tools": [{"type": "custom", "custom": {}}]}, "tools[0]"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"stop": [1]}, "stop"),
    ],
)  # fmt: skip
def test_openai_requests_that_cannot_be_translated(patch: dict[str, Any], param: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], **patch}
    with pytest.raises(TranslationError) as caught:
        openai_request_to_anthropic(body)
    assert caught.value.param == param
    assert isinstance(caught.value, RequestError)  # the gateway answers 400


PDF = "JVBERi0xLjcK"  # "%PDF-1.7\n"


def test_an_inline_pdf_file_becomes_an_anthropic_document() -> None:
    file = {"filename": "q3.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "file", "file": file}, {"type": "text", "text": "Summarise."}]}]}  # fmt: skip
    content = openai_request_to_anthropic(body)["messages"][0]["content"]
    assert content[0] == {
        "type": "document",
        "title": "q3.pdf",
        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
    }


@pytest.mark.parametrize(
    "file",
    [{"file_id": "file-abc"}, {"file_data": "data:text/csv;base64,YSxi"}, {"file_data": "x"}],
)
def test_files_anthropic_cannot_read_are_refused(file: dict[str, str]) -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "file", "file": file}]}],
    }
    with pytest.raises(TranslationError) as caught:
        openai_request_to_anthropic(body)
    assert caught.value.param == "messages[0][0].file"


def test_response_format_text_is_fine() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "text"}, "n": 1}  # fmt: skip
    assert "response_format" not in openai_request_to_anthropic(body)


# ======================================================================================
# Requests: Anthropic → OpenAI
# ======================================================================================


def test_anthropic_request_to_openai_full_conversation() -> None:
    body = {
        "model": "claude-x",
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Metric."}],
        "max_tokens": 200,
        "temperature": 0.3,
        "top_k": 5,
        "stop_sequences": ["END"],
        "stream": True,
        "metadata": {"user_id": "alice"},
        "tools": [{"name": "get_weather", "input_schema": WEATHER_SCHEMA},
                  {"type": "custom", "name": "g", "description": "G"}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Where?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": PNG}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"city": "Paris"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                    {"type": "text", "text": "18C"},
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/m.png"}},
                ]},
                {"type": "text", "text": "Thanks"},
            ]},
        ],
    }  # fmt: skip
    out = anthropic_request_to_openai(body, model="gpt-4o")
    assert out == {
        "model": "gpt-4o",
        "max_tokens": 200,
        "temperature": 0.3,
        "stop": ["END"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "alice",
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}},
            {"type": "function", "function": {"name": "g", "description": "G",
             "parameters": {"type": "object", "properties": {}}}},
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "messages": [
            {"role": "system", "content": "Be brief.\n\nMetric."},
            {"role": "user", "content": [
                {"type": "text", "text": "Where?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            # The tool result's image (tool messages carry text only), then the user text.
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://x.test/m.png"}},
                {"type": "text", "text": "Thanks"},
            ]},
        ],
    }  # fmt: skip
    parsed = ChatRequest.from_openai(out)
    assert parsed.image_count == 2
    assert parsed.messages[2].tool_calls == 1


def test_anthropic_request_options() -> None:
    body = {"model": "c", "max_tokens": 10, "system": "S",
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    out = anthropic_request_to_openai(body, max_tokens_field="max_completion_tokens")
    assert out == {
        "model": "c",
        "max_completion_tokens": 10,
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}],
    }
    for kind, expected in (("auto", "auto"), ("none", "none")):
        body2 = {**body, "tool_choice": {"type": kind}}
        assert anthropic_request_to_openai(body2)["tool_choice"] == expected
    body3 = {**body, "tool_choice": {"type": "tool", "name": "f"}}
    assert anthropic_request_to_openai(body3)["tool_choice"] == {
        "type": "function",
        "function": {"name": "f"},
    }


def test_anthropic_documents_become_openai_text_or_files() -> None:
    body = {"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": [
        {"type": "document", "title": "Ledger", "context": "Q3",
         "source": {"type": "text", "media_type": "text/plain", "data": "All green."}},
        {"type": "document", "source": {"type": "content", "content": "Page two."}},
        {"type": "document", "title": "q3.pdf",
         "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
    ]}]}  # fmt: skip
    content = anthropic_request_to_openai(body)["messages"][0]["content"]
    pdf = {"filename": "q3.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}
    assert content == [
        {"type": "text", "text": "Ledger\n\nQ3\n\nAll green."},
        {"type": "text", "text": "Page two."},
        {"type": "file", "file": pdf},
    ]


def test_tool_only_assistant_turn_has_null_content() -> None:
    body = {"model": "c", "max_tokens": 10, "messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                           "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
    ]}  # fmt: skip
    messages = anthropic_request_to_openai(body)["messages"]
    assert messages[0]["content"] is None
    assert messages[1] == {"role": "tool", "tool_call_id": "t", "content": ""}
    assert len(messages) == 2


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
        ({"messages": [{"role": "user", "content": [{"type": "document"}]}]},
         "messages[0].content[0]"),
        ({"messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "url", "url": "https://x/q3.pdf"}}]}]},
         "messages[0].content[0]"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
         "messages[0].content[0]"),
        ({"tool_choice": {"type": "maybe"}}, "tool_choice"),
        ({"system": [{"type": "image"}]}, "system"),
    ],
)  # fmt: skip
def test_anthropic_requests_that_cannot_be_translated(patch: dict[str, Any], param: str) -> None:
    body = {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], **patch}
    with pytest.raises(TranslationError) as caught:
        anthropic_request_to_openai(body)
    assert caught.value.param == param


# -- round trips ----------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
_args = st.dictionaries(st.sampled_from(["a", "b", "city"]), st.integers() | _text, max_size=3)


@st.composite
def openai_conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Canonical OpenAI conversations: alternating turns, tool calls answered by tool
    messages; the shape translation can carry both ways without loss."""
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(_text)})
    for turn in range(draw(st.integers(1, 4))):
        messages.append({"role": "user", "content": draw(_text)})
        calls = draw(st.integers(0, 2))
        content = draw(st.none() | _text) if calls else draw(_text)
        assistant: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            assistant["tool_calls"] = [
                {
                    "id": f"call_{turn}_{i}",
                    "type": "function",
                    "function": {
                        "name": "f",
                        "arguments": json.dumps(draw(_args), separators=(",", ":")),
                    },
                }
                for i in range(calls)
            ]
        messages.append(assistant)
        for i in range(calls):
            messages.append(
                {"role": "tool", "tool_call_id": f"call_{turn}_{i}", "content": draw(_text)}
            )
    return messages


def _canonical_args(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool arguments compared as JSON values (whitespace is not meaning)."""
    out = []
    for message in messages:
        message = dict(message)
        if "tool_calls" in message:
            message["tool_calls"] = [
                {
                    **c,
                    "function": {
                        **c["function"],
                        "arguments": json.loads(c["function"]["arguments"]),
                    },
                }
                for c in message["tool_calls"]
            ]
        out.append(message)
    return out


@settings(max_examples=200, deadline=None)
@given(messages=openai_conversations())
def test_property_openai_round_trip_through_anthropic(messages: list[dict[str, Any]]) -> None:
    body = {"model": "m", "messages": messages, "max_tokens": 50}
    anthropic = openai_request_to_anthropic(body)
    back = anthropic_request_to_openai(anthropic)
    # A trailing tool message (no user turn after it) is also carried: it is the tool turn.
    assert _canonical_args(back["messages"]) == _canonical_args(messages)
    assert back["max_tokens"] == 50


@settings(max_examples=200, deadline=None)
@given(messages=openai_conversations())
def test_property_anthropic_round_trip_through_openai(messages: list[dict[str, Any]]) -> None:
    anthropic = openai_request_to_anthropic({"model": "m", "messages": messages})
    again = openai_request_to_anthropic(anthropic_request_to_openai(anthropic))
    assert again == anthropic


# ======================================================================================
# Responses
# ======================================================================================

ANTHROPIC_MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-x",
    "content": [
        {"type": "text", "text": "It is "},
        {"type": "text", "text": "sunny."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 50,
    },
}

OPENAI_COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "It is sunny.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 1150,
        "completion_tokens": 20,
        "total_tokens": 1170,
        "prompt_tokens_details": {"cached_tokens": 1000},
    },
}


def test_anthropic_response_to_openai() -> None:
    out = anthropic_response_to_openai(ANTHROPIC_MESSAGE, created=1700000000, model="claude")
    assert out == {
        "id": "msg_1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "claude",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "It is sunny.",
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 1150,  # 100 uncached + 1000 read + 50 written
            "completion_tokens": 20,
            "total_tokens": 1170,
            "prompt_tokens_details": {"cached_tokens": 1000},
        },
    }
    assert usage_from_openai(out) == usage_from_anthropic(ANTHROPIC_MESSAGE)


def test_openai_response_to_anthropic() -> None:
    out = openai_response_to_anthropic(OPENAI_COMPLETION)
    assert out == {
        "id": "chatcmpl-1",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4o",
        "content": [
            {"type": "text", "text": "It is sunny."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 150,
            "output_tokens": 20,
            "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 0,
        },
    }
    assert usage_from_anthropic(out) == usage_from_openai(OPENAI_COMPLETION)


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
        ("something_new", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reason_mapping(stop_reason: str | None, finish_reason: str) -> None:
    message = {**ANTHROPIC_MESSAGE, "stop_reason": stop_reason, "content": []}
    out = anthropic_response_to_openai(message, created=0)
    assert out["choices"][0]["finish_reason"] == finish_reason
    assert out["choices"][0]["message"]["content"] == ""


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_stop_reason_mapping(finish_reason: str | None, stop_reason: str) -> None:
    choice = {"message": {"content": None}, "finish_reason": finish_reason}
    completion = {"id": "c", "model": "m", "choices": [choice]}
    out = openai_response_to_anthropic(completion)
    assert out["stop_reason"] == stop_reason
    assert out["content"] == []
    assert out["usage"]["input_tokens"] == 0  # no usage reported: zeros, never invented


def test_responses_validate_against_the_official_sdk_types() -> None:
    chat = pytest.importorskip("openai.types.chat")
    anthropic_types = pytest.importorskip("anthropic.types")
    completion = chat.ChatCompletion.model_validate(
        anthropic_response_to_openai(ANTHROPIC_MESSAGE, created=1)
    )
    assert completion.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert completion.usage.prompt_tokens_details.cached_tokens == 1000
    message = anthropic_types.Message.model_validate(
        openai_response_to_anthropic(OPENAI_COMPLETION)
    )
    assert message.content[1].input == {"city": "Paris"}
    assert message.usage.cache_read_input_tokens == 1000


def test_error_bodies() -> None:
    anthropic_error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    assert anthropic_error_to_openai(anthropic_error, 529) == {
        "error": {"message": "busy", "type": "overloaded_error", "code": None, "param": None}
    }
    openai_error = {"error": {"message": "slow down", "type": "requests", "code": "rate"}}
    assert openai_error_to_anthropic(openai_error, 429) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
    assert openai_error_to_anthropic({"error": "boom"}, 502)["error"] == {
        "type": "api_error",
        "message": "boom",
    }
    assert anthropic_error_to_openai("garbage", 500)["error"]["message"] == "upstream error"


# ======================================================================================
# Usage
# ======================================================================================


def test_usage_from_openai() -> None:
    assert usage_from_openai(OPENAI_COMPLETION) == Usage(1150, 20, 1000)
    assert usage_from_openai({"prompt_tokens": 10, "completion_tokens": 2}) == Usage(10, 2, 0)
    # cached_tokens is part of prompt_tokens: never more cached than input.
    weird = {"prompt_tokens": 5, "completion_tokens": 1,
             "prompt_tokens_details": {"cached_tokens": 9}}  # fmt: skip
    assert usage_from_openai(weird) == Usage(5, 1, 5)
    assert usage_from_openai({"choices": []}) is None
    assert usage_from_openai({"usage": None, "id": "x"}) is None
    assert usage_from_openai("nope") is None
    assert usage_from_openai({"prompt_tokens": "10", "completion_tokens": -1}) == Usage(0, 0, 0)


def test_usage_from_anthropic() -> None:
    assert usage_from_anthropic(ANTHROPIC_MESSAGE) == Usage(1150, 20, 1000)
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 7, "output_tokens": 1}}}
    assert usage_from_anthropic(start) == Usage(7, 1, 0)
    assert usage_from_anthropic({"input_tokens": 3, "cache_creation_input_tokens": 4}) == Usage(
        7, 0, 0
    )  # cache writes are input, billed (for now) at the input price
    assert usage_from_anthropic({"content": []}) is None


@settings(max_examples=200)
@given(
    uncached=st.integers(0, 10**7),
    read=st.integers(0, 10**7),
    write=st.integers(0, 10**7),
    output=st.integers(0, 10**6),
)
def test_property_cached_tokens_are_never_double_counted(
    uncached: int, read: int, write: int, output: int
) -> None:
    message = {**ANTHROPIC_MESSAGE, "usage": {
        "input_tokens": uncached, "output_tokens": output,
        "cache_read_input_tokens": read, "cache_creation_input_tokens": write}}  # fmt: skip
    usage = usage_from_anthropic(message)
    assert usage == Usage(uncached + read + write, output, read)
    assert usage.cached_input_tokens <= usage.input_tokens
    openai = anthropic_response_to_openai(message, created=0)
    assert usage_from_openai(openai) == usage
    assert usage_from_anthropic(openai_response_to_anthropic(openai)) == usage


# ======================================================================================
# SSE and streams
# ======================================================================================


def test_sse_decoder_handles_any_chunking_crlf_comments_and_multiline_data() -> None:
    raw = (
        b": comment\r\n"
        b'event: one\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
        b"id: 5\nretry: 10\ndata:[DONE]\n\n"
        b"event: tail\ndata: x"
    )
    whole = SSEDecoder()
    events = whole.feed(raw)
    assert events == [SSEEvent("one", b'{"a":\n1}'), SSEEvent(None, b"[DONE]")]
    assert whole.flush() == [SSEEvent("tail", b"x")]
    for size in (1, 2, 3, 7):
        decoder = SSEDecoder()
        got: list[SSEEvent] = []
        for i in range(0, len(raw), size):
            got.extend(decoder.feed(raw[i : i + size]))
        got.extend(decoder.flush())
        assert got == [*events, SSEEvent("tail", b"x")]


def test_encode_sse() -> None:
    assert encode_sse({"a": 1}) == b'data: {"a":1}\n\n'
    assert encode_sse(b"[DONE]") == b"data: [DONE]\n\n"
    assert encode_sse({"type": "ping"}, "ping") == b'event: ping\ndata: {"type":"ping"}\n\n'


def anthropic_sse() -> bytes:
    def ev(name: str, payload: dict[str, Any]) -> bytes:
        return encode_sse({"type": name, **payload}, name)

    return b"".join(
        [
            ev("message_start", {"message": {
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 30, "output_tokens": 1,
                          "cache_read_input_tokens": 200, "cache_creation_input_tokens": 0}}}),
            ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
            ev("ping", {}),
            ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
            ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
            ev("content_block_stop", {"index": 0}),
            ev("content_block_start", {"index": 1, "content_block": {
                "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
            ev("content_block_delta", {"index": 1, "delta": {
                "type": "input_json_delta", "partial_json": '{"city": '}}),
            ev("content_block_delta", {"index": 1, "delta": {
                "type": "input_json_delta", "partial_json": '"Paris"}'}}),
            ev("content_block_stop", {"index": 1}),
            ev("message_delta", {"delta": {"stop_reason": "tool_use", "stop_sequence": None},
                                 "usage": {"output_tokens": 25}}),
            ev("message_stop", {}),
        ]
    )  # fmt: skip


def openai_chunks(out: bytes) -> list[dict[str, Any]]:
    events = SSEDecoder().feed(out)
    assert events[-1].data == b"[DONE]"
    return [orjson.loads(e.data) for e in events[:-1]]


def test_anthropic_stream_to_openai_chunks() -> None:
    stream = AnthropicToOpenAIStream(created=123, model="alias")
    out = stream.feed(anthropic_sse()) + stream.close()
    assert b": ping\n\n" in out
    chunks = openai_chunks(out)
    assert {c["id"] for c in chunks} == {"msg_1"}
    assert {c["model"] for c in chunks} == {"alias"}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content", "") for d in deltas) == "Hello"
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0] == {"index": 0, "id": "toolu_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}  # fmt: skip
    assert "".join(c["function"]["arguments"] for c in calls) == '{"city": "Paris"}'
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "tool_calls"
    assert set(finish[:-1]) == {None}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 230, "completion_tokens": 25,
                                   "total_tokens": 255,
                                   "prompt_tokens_details": {"cached_tokens": 200}}  # fmt: skip
    assert stream.usage == Usage(230, 25, 200)
    assert stream.close() == b""  # idempotent once done


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(0, 3000), max_size=12))
def test_property_stream_translation_does_not_depend_on_chunking(cuts: list[int]) -> None:
    raw = anthropic_sse()
    whole = AnthropicToOpenAIStream(created=1)
    expected = whole.feed(raw) + whole.close()
    stream = AnthropicToOpenAIStream(created=1)
    points = sorted({0, len(raw), *(c % (len(raw) + 1) for c in cuts)})
    got = b"".join(stream.feed(raw[a:b]) for a, b in itertools.pairwise(points))
    assert got + stream.close() == expected


def test_anthropic_stream_without_include_usage_and_without_message_stop() -> None:
    stream = AnthropicToOpenAIStream(created=1, include_usage=False)
    raw = anthropic_sse()
    cut = raw.index(b"event: message_delta")
    out = stream.feed(raw[:cut]) + stream.close()  # upstream vanished before the end
    chunks = openai_chunks(out)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)
    assert stream.usage == Usage(230, 1, 200)  # what message_start said: input is known


def test_anthropic_stream_error_event() -> None:
    stream = AnthropicToOpenAIStream(created=1)
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    out = stream.feed(encode_sse(error, "error"))
    assert orjson.loads(SSEDecoder().feed(out)[0].data) == {
        "error": {"message": "Overloaded", "type": "overloaded_error", "code": None, "param": None}
    }
    assert stream.done
    assert stream.error == error["error"]
    assert stream.close() == b""


def openai_sse(include_usage: bool = True) -> bytes:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                "model": "gpt-4o", "choices": [{"index": 0, "delta": delta,
                                                 "finish_reason": finish}]}  # fmt: skip

    parts = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                               "function": {"name": "get_time", "arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
    ]  # fmt: skip
    if include_usage:
        parts.append({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                      "model": "gpt-4o", "choices": [], "usage": {
                          "prompt_tokens": 230, "completion_tokens": 25, "total_tokens": 255,
                          "prompt_tokens_details": {"cached_tokens": 200}}})  # fmt: skip
    return b"".join(encode_sse(p) for p in parts) + b"data: [DONE]\n\n"


def anthropic_events(out: bytes) -> list[dict[str, Any]]:
    events = SSEDecoder().feed(out)
    for event in events:
        assert event.event == orjson.loads(event.data)["type"]
    return [orjson.loads(e.data) for e in events]


def test_openai_stream_to_anthropic_events() -> None:
    stream = OpenAIToAnthropicStream(model="alias")
    out = stream.feed(openai_sse()) + stream.close()
    events = anthropic_events(out)
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    assert events[0]["message"]["model"] == "alias"
    assert events[5]["content_block"] == {"type": "tool_use", "id": "call_1",
                                          "name": "get_weather", "input": {}}  # fmt: skip
    assert [e["index"] for e in events if "index" in e] == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert events[-2] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"input_tokens": 30, "output_tokens": 25, "cache_read_input_tokens": 200,
                  "cache_creation_input_tokens": 0},
    }  # fmt: skip
    assert stream.usage == Usage(230, 25, 200)


def test_openai_stream_errors_and_empty_streams() -> None:
    stream = OpenAIToAnthropicStream()
    out = stream.feed(encode_sse({"error": {"message": "bad", "type": "server_error"}}))
    assert anthropic_events(out) == [
        {"type": "error", "error": {"type": "api_error", "message": "bad"}}
    ]
    assert stream.done
    assert stream.close() == b""
    empty = OpenAIToAnthropicStream()
    events = anthropic_events(empty.close())
    assert [e["type"] for e in events] == ["message_start", "message_delta", "message_stop"]
    assert events[1]["usage"] == {"output_tokens": 0}


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(0, 5000), max_size=12))
def test_property_openai_stream_translation_does_not_depend_on_chunking(cuts: list[int]) -> None:
    raw = openai_sse()
    whole = OpenAIToAnthropicStream()
    expected = whole.feed(raw) + whole.close()
    stream = OpenAIToAnthropicStream()
    points = sorted({0, len(raw), *(c % (len(raw) + 1) for c in cuts)})
    got = b"".join(stream.feed(raw[a:b]) for a, b in itertools.pairwise(points))
    assert got + stream.close() == expected


def test_streams_are_readable_by_the_official_sdk_accumulators() -> None:
    """What each SDK's own stream helper builds from our translated events."""
    pytest.importorskip("openai")
    pytest.importorskip("anthropic")
    from anthropic.lib.streaming._messages import accumulate_event
    from openai.lib.streaming.chat import ChatCompletionStreamState
    from openai.types.chat import ChatCompletionChunk

    to_openai = AnthropicToOpenAIStream(created=1)
    state = ChatCompletionStreamState()
    for chunk in openai_chunks(to_openai.feed(anthropic_sse()) + to_openai.close()):
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    completion = state.get_final_completion()
    choice = completion.choices[0]
    assert choice.message.content == "Hello"
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls[0].function.arguments == '{"city": "Paris"}'
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 230

    to_anthropic = OpenAIToAnthropicStream()
    snapshot = None
    buffers: dict[int, bytes] = {}
    for event in anthropic_events(to_anthropic.feed(openai_sse()) + to_anthropic.close()):
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)
    assert snapshot is not None
    assert snapshot.content[0].text == "Hello"
    assert snapshot.content[1].input == {"city": "Paris"}
    assert snapshot.content[2].name == "get_time"
    assert snapshot.stop_reason == "tool_use"
    assert snapshot.usage.output_tokens == 25
    assert snapshot.usage.cache_read_input_tokens == 200


def test_cross_stream_round_trip_keeps_text_tools_and_usage() -> None:
    to_openai = AnthropicToOpenAIStream(created=1)
    openai_bytes = to_openai.feed(anthropic_sse()) + to_openai.close()
    back = OpenAIToAnthropicStream()
    events = anthropic_events(back.feed(openai_bytes) + back.close())
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    args = "".join(
        e["delta"].get("partial_json", "") for e in events if e["type"] == "content_block_delta"
    )
    assert text == "Hello"
    assert json.loads(args) == {"city": "Paris"}
    assert back.usage == to_openai.usage == Usage(230, 25, 200)
    assert back.stop_reason == "tool_use"


@pytest.mark.parametrize("protocol", [Protocol.OPENAI, Protocol.ANTHROPIC])
def test_stream_observer_sees_usage_and_text_without_changing_anything(protocol: Protocol) -> None:
    raw = openai_sse() if protocol is Protocol.OPENAI else anthropic_sse()
    observer = StreamObserver(protocol)
    for i in range(0, len(raw), 37):
        observer.feed(raw[i : i + 37])
    observer.close()
    assert observer.usage == Usage(230, 25, 200)
    assert observer.output_text.startswith("Hello")
    assert "Paris" in observer.output_text
    assert observer.error is None


def test_an_anthropic_stream_cut_before_message_delta_has_no_final_usage() -> None:
    """message_start's usage holds the input and a placeholder output count of 1: it is
    not the stream's usage. The gateway settles such a stream on its input and the output
    estimated from the text."""
    raw = anthropic_sse()
    observer = StreamObserver(Protocol.ANTHROPIC)
    observer.feed(raw[: raw.index(b"event: message_delta")])
    observer.close()
    assert observer.usage is None
    assert observer.input_usage == Usage(230, 1, 200)
    assert observer.output_text.startswith("Hello")
    observer.feed(raw[raw.index(b"event: message_delta") :])
    assert observer.usage == Usage(230, 25, 200)
    assert observer.input_usage is None


def test_stream_observer_without_usage_and_with_error() -> None:
    observer = StreamObserver(Protocol.OPENAI)
    observer.feed(openai_sse(include_usage=False))
    assert observer.usage is None  # the gateway estimates from output_text
    observer.feed(encode_sse({"error": {"message": "x"}}))
    assert observer.error == {"message": "x"}


def test_big_integers_in_tool_arguments_survive_both_ways() -> None:
    """Found by the round-trip property: orjson would turn 2**64 into a float (and refuses
    to encode it); tool arguments use the stdlib codec."""
    big = 2**70 + 1
    body = {"model": "m", "messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": f'{{"id":{big}}}'}},
    ]}]}  # fmt: skip
    anthropic = openai_request_to_anthropic(body)
    assert anthropic["messages"][0]["content"][0]["input"] == {"id": big}
    back = anthropic_request_to_openai(anthropic)
    assert back["messages"][0]["tool_calls"][0]["function"]["arguments"] == f'{{"id":{big}}}'


def test_sse_decoder_lf_stream_and_lone_event_lines() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data") == []  # no line end yet: CRLF or LF still unknown
    assert decoder.feed(b": x\n\nevent: ping\n\n: just a comment\n\ndata: y\n") == [
        SSEEvent(None, b"x"),
        SSEEvent("ping", b""),
    ]
    assert decoder.feed(b"\n") == [SSEEvent(None, b"y")]
    assert decoder.flush() == []
