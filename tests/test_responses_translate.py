"""The Responses API's pure parts: parsing into ``ChatRequest`` (what is counted, what is
refused, what makes a request stateful), its usage, and the translation to Anthropic and back
(checked against the official SDK's own Responses types, in any chunking)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from spendgate.domain.pricing import Usage
from spendgate.domain.requests import AttachmentKind, ChatRequest, Protocol, RequestError
from spendgate.domain.tokens import estimate_input_tokens
from spendgate.domain.translate import (
    AnthropicToResponsesStream,
    SSEDecoder,
    StreamObserver,
    TranslationError,
    anthropic_response_to_responses,
    responses_request_to_anthropic,
    usage_from_responses,
)
from spendgate.mock_upstream.options import Controls, MockOptions
from spendgate.mock_upstream.reply import plan_reply
from spendgate.mock_upstream.responses_api import ResponseStore, response_body, response_events
from spendgate.mock_upstream.responses_api import parse as parse_request
from test_translate import anthropic_sse

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def parse(**body: Any) -> ChatRequest:
    return ChatRequest.from_responses({"model": "m", **body})


# -- parsing ----------------------------------------------------------------------------------


def test_a_string_input_and_instructions_are_two_messages() -> None:
    request = parse(input="Hello", instructions="Be brief.", max_output_tokens=50, stream=True)
    assert [(m.role, m.text) for m in request.messages] == [
        ("system", "Be brief."),
        ("user", "Hello"),
    ]
    assert request.protocol is Protocol.RESPONSES
    assert request.max_tokens == 50
    assert request.stream
    assert request.stateful == ()
    assert not request.attachments


def test_items_are_read_as_the_model_reads_them() -> None:
    request = parse(
        input=[
            {"role": "developer", "content": "Rules."},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Look"},
                {"type": "input_image", "image_url": "https://example.com/a.png"},
                {"type": "input_file", "file_id": "file_1"},
            ]},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "Calling."},
                {"type": "refusal", "refusal": "No."},
            ]},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": '{"a":1}'},
            {"type": "function_call_output", "call_id": "c", "output": "42"},
            {"type": "reasoning", "id": "r", "summary": [{"type": "summary_text", "text": "hm"}],
             "encrypted_content": "Z" * 300},
        ],
        tools=[{"type": "function", "name": "f", "parameters": {}}],
    )  # fmt: skip
    texts = [(m.role, m.text) for m in request.messages]
    assert texts == [
        ("developer", "Rules."),
        ("user", "Look"),
        ("assistant", "Calling.\nNo."),
        ("assistant", 'f {"a":1}'),
        ("tool", "42"),
        ("assistant", "hm"),
    ]
    assert request.image_count == 1
    assert request.messages[3].tool_calls == 1
    assert request.needs_tools
    assert request.needs_vision
    kinds = [(a.kind, a.size) for a in request.attachments]
    assert kinds == [(AttachmentKind.DOCUMENT, None), (AttachmentKind.OTHER, 300)]


@pytest.mark.parametrize(
    ("field", "value"),
    [("previous_response_id", "resp_1"), ("conversation", {"id": "conv_1"}),
     ("prompt", {"id": "pmpt_1"})],
)  # fmt: skip
def test_state_held_by_the_provider_is_unbounded_input_and_stateful(
    field: str, value: object
) -> None:
    request = parse(**{field: value})  # no input of its own is needed
    assert request.stateful == (field,)
    assert estimate_input_tokens(request).unbounded
    assert estimate_input_tokens(parse(input="x", **{field: value})).unbounded


def test_store_true_pins_the_provider_without_unbounding_the_input() -> None:
    request = parse(input="x", store=True)
    assert request.stateful == ("store",)
    assert not estimate_input_tokens(request).unbounded
    assert parse(input="x", store=False).stateful == ()


def test_hosted_tools_make_the_input_unbounded_function_tools_do_not() -> None:
    function = parse(input="x", tools=[{"type": "function", "name": "f"}])
    hosted = parse(input="x", tools=[{"type": "web_search"}])
    assert not estimate_input_tokens(function).unbounded
    assert estimate_input_tokens(hosted).unbounded
    assert hosted.needs_tools


def test_json_formats_need_json_and_their_schema_is_input() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    request = parse(input="x", text={"format": {"type": "json_schema", "name": "a",
                                                "schema": schema}})  # fmt: skip
    assert request.json_mode
    assert "answer" in request.tools_text
    assert parse(input="x", text={"format": {"type": "json_object"}}).json_mode
    assert not parse(input="x", text={"format": {"type": "text"}}).json_mode


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "input"),
        ({"input": None, "store": True}, "input"),
        ({"input": [{"type": "message", "role": "user"}]}, "input[0].content"),
        ({"input": [{"type": "function_call_output", "call_id": "c"}]}, "input[0].output"),
        ({"input": [{"type": 3}]}, "input[0].type"),
        ({"input": ["text"]}, "input[0]"),
        ({"input": "x", "tools": [{"name": "f"}]}, "tools[0].type"),
        ({"input": "x", "instructions": ["a"]}, "instructions"),
        ({"input": "x", "reasoning": "high"}, "reasoning"),
        ({"input": "x", "tool_choice": 1}, "tool_choice"),
        ({"input": "x", "conversation": {"name": "c"}}, "conversation"),
        ({"input": "x", "store": "yes"}, "store"),
        ({"input": "x", "background": True}, "background"),
    ],
)
def test_malformed_bodies_name_the_param(body: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse(**body)
    assert caught.value.param == param


unknown_items = st.fixed_dictionaries(
    {"type": st.text("abcdefgh_", min_size=3, max_size=12).filter(
        lambda t: t not in {"message", "function_call", "function_call_output", "reasoning",
                            "item_reference"})},
    optional={"data": st.text(max_size=2000), "n": st.integers()},
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(items=st.lists(unknown_items, min_size=1, max_size=4))
def test_unknown_items_never_lower_the_estimate(items: list[dict[str, Any]]) -> None:
    base = [{"role": "user", "content": "Hello there"}]
    plain = estimate_input_tokens(parse(input=base))
    more = estimate_input_tokens(parse(input=[*base, *items]))
    sizes = (json.dumps(item, ensure_ascii=False, separators=(",", ":")) for item in items)
    assert more.upper >= plain.upper + sum(len(size.encode()) for size in sizes)
    assert more.point >= plain.point


# -- usage ------------------------------------------------------------------------------------


@given(
    inputs=st.integers(0, 10**9),
    cached=st.integers(0, 10**9),
    reasoning=st.integers(0, 10**6),
    visible=st.integers(0, 10**6),
)
def test_responses_usage_counts_cached_input_and_reasoning_output(
    inputs: int, cached: int, reasoning: int, visible: int
) -> None:
    usage = {
        "input_tokens": inputs,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": reasoning + visible,  # includes the reasoning tokens
        "output_tokens_details": {"reasoning_tokens": reasoning},
    }
    expected = Usage(inputs, reasoning + visible, min(cached, inputs))
    assert usage_from_responses({"usage": usage}) == expected
    event = {"type": "response.completed", "response": {"usage": usage}}
    assert usage_from_responses(event) == expected
    assert usage_from_responses({"type": "response.created", "response": {"usage": None}}) is None


def test_a_native_stream_is_observed_for_usage_text_and_errors() -> None:
    stream = AnthropicToResponsesStream(created=1, model="m", request={})
    raw = stream.feed(anthropic_sse())
    observer = StreamObserver(Protocol.RESPONSES)
    for start in range(0, len(raw), 53):
        observer.feed(raw[start : start + 53])
    observer.close()
    assert observer.usage == Usage(230, 25, 200)
    assert observer.output_text == 'Hello{"city": "Paris"}'
    assert observer.error is None
    broken = StreamObserver(Protocol.RESPONSES)
    broken.feed(b'event: error\ndata: {"type":"error","code":"x","message":"boom"}\n\n')
    broken.close()
    assert broken.error is not None
    assert broken.error["message"] == "boom"
    # A response that failed is billed for what it used, and is an error all the same.
    failed = StreamObserver(Protocol.RESPONSES)
    response = {
        "status": "failed",
        "error": {"code": "server_error", "message": "boom"},
        "usage": {"input_tokens": 9, "output_tokens": 2},
    }
    event = {"type": "response.failed", "response": response}
    failed.feed(b"event: response.failed\ndata: " + orjson.dumps(event) + b"\n\n")
    failed.close()
    assert failed.usage == Usage(9, 2, 0)
    assert failed.error is not None
    assert failed.error["message"] == "boom"


# -- translation to Anthropic -----------------------------------------------------------------


def test_a_conversation_with_tool_results_becomes_anthropic_turns() -> None:
    body = {
        "model": "ignored",
        "instructions": "Be brief.",
        "input": [
            {"role": "system", "content": "Rules."},
            {"role": "user", "content": "Weather in Oslo and Rome?"},
            {"type": "reasoning", "id": "r", "summary": []},
            {"type": "function_call", "call_id": "a", "name": "w", "arguments": '{"c":"Oslo"}'},
            {"type": "function_call", "call_id": "b", "name": "w", "arguments": '{"c":"Rome"}'},
            {"type": "function_call_output", "call_id": "a", "output": "Snow"},
            {"type": "function_call_output", "call_id": "b",
             "output": [{"type": "input_text", "text": "Sun"}]},
        ],
        "tools": [{"type": "function", "name": "w", "parameters": {"type": "object"}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "temperature": 1.5,
        "max_output_tokens": 99,
        "stream": True,
    }  # fmt: skip
    out = responses_request_to_anthropic(body, model="claude", default_max_tokens=4096)
    assert out["model"] == "claude"
    assert out["max_tokens"] == 99
    assert out["stream"] is True
    assert out["system"] == "Be brief.\n\nRules."
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert [b["id"] for b in out["messages"][1]["content"]] == ["a", "b"]
    assert out["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "a", "content": "Snow"},
        {"type": "tool_result", "tool_use_id": "b", "content": "Sun"},
    ]
    assert out["tools"] == [{"name": "w", "input_schema": {"type": "object"}}]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert out["temperature"] == 1.0


def test_images_and_pdfs_become_anthropic_blocks() -> None:
    content = [
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JV"},
    ]
    out = responses_request_to_anthropic(
        {"input": [{"role": "user", "content": content}]}, model="c", default_max_tokens=10
    )
    blocks = out["messages"][0]["content"]
    assert blocks[0] == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                     "data": "AAAA"}}  # fmt: skip
    assert blocks[1]["type"] == "document"
    assert blocks[1]["title"] == "a.pdf"
    assert out["max_tokens"] == 10


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"text": {"format": {"type": "json_object"}}}, "text.format"),
        ({"tool_choice": {"type": "web_search"}}, "tool_choice"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ],
)
def test_what_anthropic_cannot_express_is_refused(body: dict[str, Any], param: str) -> None:
    with pytest.raises(TranslationError) as caught:
        responses_request_to_anthropic({"input": "x", **body}, model="c", default_max_tokens=1)
    assert caught.value.param == param


# -- answers back -----------------------------------------------------------------------------


def test_an_anthropic_message_is_a_valid_responses_object() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"c": "Oslo"}},
        ],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 4},
    }
    body = anthropic_response_to_responses(
        message, created=7, model="alias", request={"instructions": "Hi", "temperature": 0.5}
    )
    response = Response.model_validate(body)  # the SDK's own type, validated
    assert response.output_text == "Let me check."
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    call = response.output[1]
    assert call.type == "function_call"
    assert call.call_id == "toolu_1"
    assert call.arguments == '{"c":"Oslo"}'
    assert response.usage is not None
    assert response.usage.input_tokens == 14
    assert response.usage.input_tokens_details.cached_tokens == 4
    assert response.instructions == "Hi"
    assert response.temperature == 0.5


def responses_events(out: bytes) -> list[dict[str, Any]]:
    events = SSEDecoder().feed(out)
    decoded = [orjson.loads(event.data) for event in events]
    assert [event.event for event in events] == [event["type"] for event in decoded]
    return decoded


def test_an_anthropic_stream_becomes_valid_responses_events() -> None:
    stream = AnthropicToResponsesStream(created=1, model="alias", request={})
    events = responses_events(stream.feed(anthropic_sse()) + stream.close())
    for event in events:
        EVENTS.validate_python(event)  # every event is one the SDK knows, fully formed
    kinds = [event["type"] for event in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    final = Response.model_validate(events[-1]["response"])
    assert final.output_text == "Hello"
    assert final.output[1].type == "function_call"
    assert final.output[1].arguments == '{"city": "Paris"}'
    assert final.usage is not None
    assert final.usage.output_tokens == 25
    assert stream.usage == Usage(230, 25, 200)
    assert stream.close() == b""


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(0, 3000), max_size=12))
def test_the_stream_translation_does_not_depend_on_chunking(cuts: list[int]) -> None:
    raw = anthropic_sse()
    whole = AnthropicToResponsesStream(created=1, model="m", request={})
    expected = whole.feed(raw) + whole.close()
    stream = AnthropicToResponsesStream(created=1, model="m", request={})
    points = sorted({0, len(raw), *(c % (len(raw) + 1) for c in cuts)})
    got = b"".join(stream.feed(raw[a:b]) for a, b in itertools.pairwise(points))
    assert got + stream.close() == expected


def test_an_anthropic_error_event_is_one_the_openai_sdk_raises() -> None:
    stream = AnthropicToResponsesStream(created=1, model="m", request={})
    raw = anthropic_sse()
    cut = raw.index(b"event: content_block_stop")
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",' \
        b'"message":"Overloaded"}}\n\n'  # fmt: skip
    events = responses_events(stream.feed(raw[:cut] + error))
    assert events[-1]["type"] == "error"
    assert events[-1]["message"] == "Overloaded"
    assert events[-1]["error"]["message"] == "Overloaded"  # the SDK raises on ``error``
    assert stream.feed(raw[cut:]) == b""  # nothing after the error


# -- the mock upstream's Responses API --------------------------------------------------------


@pytest.mark.parametrize("tools", [False, True])
def test_the_mocks_events_and_body_are_valid_responses_api(tools: bool) -> None:
    body: dict[str, Any] = {"model": "m", "input": "Hi", "reasoning": {"effort": "low"}}
    if tools:
        body["tools"] = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]
    call = parse_request(body, 0, ResponseStore())
    reply = plan_reply(call, MockOptions(), Controls(cached_tokens=2))
    events = responses_events(b"".join(response_events(body, reply, call, "x1", 1, 4)))
    for event in events:
        EVENTS.validate_python(event)
    final = Response.model_validate(events[-1]["response"])
    assert final == Response.model_validate(orjson.loads(response_body(body, reply, call, "x1", 1)))
    assert final.usage is not None
    assert final.usage.output_tokens_details.reasoning_tokens == 16
    assert final.usage.input_tokens_details.cached_tokens == 2
    assert [item.type for item in final.output] == [
        "reasoning",
        "function_call" if tools else "message",
    ]
