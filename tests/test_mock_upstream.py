"""The mock upstream, exercised over real HTTP with the official OpenAI and Anthropic SDKs."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import fields, replace
from typing import Any, TypeVar

import aiohttp
import anthropic
import openai
import pytest
from anthropic.types import MessageParam, RawMessageStreamEvent, ToolParam
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
)

from spendgate.mock_upstream import (
    MockOptions,
    MockUpstream,
    MockUpstreamThread,
    fingerprint,
)

T = TypeVar("T")

OPENAI_KEY = "sk-openai-test-secret"
ANTHROPIC_KEY = "sk-ant-test-secret"
HELLO_TEXT = "Hello there, how are you today?"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": HELLO_TEXT}]
HELLO_CLAUDE: list[MessageParam] = [{"role": "user", "content": HELLO_TEXT}]
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit"],
        },
    },
}
CLOCK_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
ANTHROPIC_TOOLS: list[ToolParam] = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
    {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
]


def tokens(text: str) -> int:
    """The documented rule, written independently of the implementation."""
    return math.ceil(len(text.encode()) / 4)


def prompt_tokens(*texts: str) -> int:
    """One message per text: 4 tokens of framing plus its text."""
    return sum(4 + tokens(text) for text in texts)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0) as running:
        yield running


@pytest.fixture
def mock(server: MockUpstreamThread) -> Iterator[MockUpstreamThread]:
    """The shared server with fresh counters; options changed by a test are put back."""
    saved = replace(server.options)
    server.stats.reset()
    yield server
    for spec in fields(MockOptions):
        setattr(server.options, spec.name, getattr(saved, spec.name))


@pytest.fixture
def oai(mock: MockUpstreamThread) -> openai.OpenAI:
    return openai.OpenAI(api_key=OPENAI_KEY, base_url=mock.openai_base_url, max_retries=0)


@pytest.fixture
def claude(mock: MockUpstreamThread) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=ANTHROPIC_KEY, base_url=mock.base_url, max_retries=0)


def post_raw(
    url: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# ---------------------------------------------------------------- OpenAI


def test_openai_completion_has_usage_consistent_with_text(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Be brief."}, *HELLO],
    )
    text = reply.choices[0].message.content
    assert text
    assert reply.model == "gpt-4o-mini"
    assert reply.id.startswith("chatcmpl-")
    assert reply.object == "chat.completion"
    assert reply.system_fingerprint
    assert reply.created > 0
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == prompt_tokens("Be brief.", HELLO_TEXT)
    assert reply.usage.completion_tokens == tokens(text)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert 30 <= reply.usage.completion_tokens <= 90  # default mean 60: half to 1.5 times


def test_answers_are_deterministic_per_prompt_and_seed(oai: openai.OpenAI) -> None:
    def answer(client: openai.OpenAI, prompt: str) -> str | None:
        messages: Any = [{"role": "user", "content": prompt}]
        reply = client.chat.completions.create(model="m", messages=messages)
        return reply.choices[0].message.content

    first = answer(oai, "What is a budget?")
    assert answer(oai, "What is a budget?") == first
    assert answer(oai, "What is a ledger?") != first
    with MockUpstreamThread(latency_ms=0, seed=7) as other:
        client = openai.OpenAI(api_key="k", base_url=other.openai_base_url, max_retries=0)
        assert answer(client, "What is a budget?") != first


def test_openai_stream_matches_and_ends_with_usage_chunk(oai: openai.OpenAI) -> None:
    whole = oai.chat.completions.create(model="gpt-4o", messages=HELLO)
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    *body, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert whole.usage is not None
    assert last.usage.prompt_tokens == whole.usage.prompt_tokens
    assert last.usage.completion_tokens == whole.usage.completion_tokens
    assert all(chunk.usage is None for chunk in body)
    assert body[0].choices[0].delta.role == "assistant"
    assert body[-1].choices[0].finish_reason == "stop"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in body)
    assert text == whole.choices[0].message.content
    assert len(body) == 1 + 16 + 1  # role chunk, --stream-chunks deltas, finish chunk
    assert {chunk.id for chunk in chunks} == {chunks[0].id}


def test_openai_stream_without_include_usage_has_no_usage_chunk(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(model="m", messages=HELLO, stream=True))
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)


def test_stream_chunks_option(mock: MockUpstreamThread, oai: openai.OpenAI) -> None:
    mock.options.stream_chunks = 3
    chunks = list(oai.chat.completions.create(model="m", messages=HELLO, stream=True))
    assert len(chunks) == 1 + 3 + 1


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_openai_max_tokens_truncates(oai: openai.OpenAI, param: str) -> None:
    whole = oai.chat.completions.create(model="m", messages=HELLO)
    if param == "max_tokens":
        cut = oai.chat.completions.create(model="m", messages=HELLO, max_tokens=5)
    else:
        cut = oai.chat.completions.create(model="m", messages=HELLO, max_completion_tokens=5)
    text, full = cut.choices[0].message.content, whole.choices[0].message.content
    assert text is not None
    assert full is not None
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage is not None
    assert cut.usage.completion_tokens == 5 == tokens(text)
    assert full.startswith(text)


def test_openai_limit_above_answer_changes_nothing(oai: openai.OpenAI) -> None:
    whole = oai.chat.completions.create(model="m", messages=HELLO)
    roomy = oai.chat.completions.create(model="m", messages=HELLO, max_tokens=1000)
    assert roomy.choices[0].finish_reason == "stop"
    assert roomy.choices[0].message.content == whole.choices[0].message.content


def test_openai_tool_call(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL, CLOCK_TOOL],
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert set(arguments) == {"city", "unit"}
    assert isinstance(arguments["city"], str)
    assert arguments["unit"] in ("celsius", "fahrenheit")
    assert reply.usage is not None
    assert reply.usage.completion_tokens == tokens("get_weather" + call.function.arguments)
    tools_json = json.dumps([WEATHER_TOOL, CLOCK_TOOL], separators=(",", ":"))
    assert reply.usage.prompt_tokens == prompt_tokens("Weather in Paris?") + tokens(tools_json)


def test_openai_tool_choice(oai: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "What time is it?"}]
    tools: Any = [WEATHER_TOOL, CLOCK_TOOL]
    named = oai.chat.completions.create(
        model="m",
        messages=messages,
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert named.choices[0].message.tool_calls is not None
    (call,) = named.choices[0].message.tool_calls
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.function.name == "get_time"
    assert call.function.arguments == "{}"
    none = oai.chat.completions.create(
        model="m", messages=messages, tools=tools, tool_choice="none"
    )
    assert none.choices[0].message.tool_calls is None
    assert none.choices[0].message.content


def test_openai_streamed_tool_call(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "Weather?"}],
            tools=[WEATHER_TOOL],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    head = chunks[0].choices[0].delta.tool_calls
    assert head is not None
    assert head[0].function is not None
    assert head[0].function.name == "get_weather"
    arguments = "".join(
        call.function.arguments or ""
        for c in chunks[1:]
        if c.choices
        for call in c.choices[0].delta.tool_calls or ()
        if call.function is not None
    )
    assert set(json.loads(arguments)) == {"city", "unit"}
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == tokens("get_weather" + arguments)


def test_openai_prompt_counts_parts_images_and_tool_history(oai: openai.OpenAI) -> None:
    messages: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": " this picture"},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "zoom", "arguments": '{"x":1}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "zoomed"},
    ]
    reply = oai.chat.completions.create(model="m", messages=messages)
    assert reply.usage is not None
    expected = (
        (4 + tokens("Describe this picture") + 85)
        + (4 + tokens('zoom{"x":1}'))
        + (4 + tokens("zoomed"))
    )
    assert reply.usage.prompt_tokens == expected


def test_documents_count_the_data_they_carry(
    oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    """As a provider reads a whole file: text documents by their text, inline base64 by its
    characters; a mere reference (URL, file id) counts as an image."""
    files: Any = [
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0x"}},
        {"type": "file", "file": {"file_id": "file-abc"}},
    ]
    reply = oai.chat.completions.create(model="m", messages=[{"role": "user", "content": files}])
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 4 + tokens("data:application/pdf;base64,JVBERi0x") + 85
    documents: Any = [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                        "data": "All green."}},
        {"type": "document", "source": {"type": "content", "content": "Page two."}},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
    ]  # fmt: skip
    message = claude.messages.create(
        model="c", max_tokens=5, messages=[{"role": "user", "content": documents}]
    )
    assert message.usage.input_tokens == 4 + tokens("All green.Page two.") + 85


def test_output_and_cached_tokens_headers(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    headers = {"x-mock-output-tokens": "123", "x-mock-cached-tokens": "5"}
    reply = oai.chat.completions.create(model="m", messages=HELLO, extra_headers=headers)
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 123 == tokens(reply.choices[0].message.content or "")
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 5
    message = claude.messages.create(
        model="c",
        max_tokens=500,
        messages=HELLO_CLAUDE,
        extra_headers=headers,
    )
    # Anthropic reports cache reads beside input_tokens, not inside them.
    assert message.usage.cache_read_input_tokens == 5
    assert message.usage.input_tokens == reply.usage.prompt_tokens - 5
    assert message.usage.output_tokens == 123


def test_no_usage_header(oai: openai.OpenAI) -> None:
    headers = {"x-mock-no-usage": "1"}
    reply = oai.chat.completions.create(model="m", messages=HELLO, extra_headers=headers)
    assert reply.usage is None
    chunks = list(
        oai.chat.completions.create(
            model="m",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=headers,
        )
    )
    assert all(chunk.choices and chunk.usage is None for chunk in chunks)


def test_openai_models(oai: openai.OpenAI) -> None:
    ids = [model.id for model in oai.models.list()]
    assert "gpt-4o-mini" in ids
    assert "claude-opus-4" in ids


# ---------------------------------------------------------------- Anthropic


def test_anthropic_message_has_usage_consistent_with_text(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="claude-opus-4",
        max_tokens=1024,
        system="Be brief.",
        messages=HELLO_CLAUDE,
    )
    assert message.id.startswith("msg_")
    assert message.model == "claude-opus-4"
    assert message.role == "assistant"
    assert message.stop_reason == "end_turn"
    (block,) = message.content
    assert block.type == "text"
    assert message.usage.input_tokens == prompt_tokens("Be brief.", HELLO_TEXT)
    assert message.usage.output_tokens == tokens(block.text)


def test_anthropic_stream_event_sequence(claude: anthropic.Anthropic) -> None:
    whole = claude.messages.create(model="c", max_tokens=1024, messages=HELLO_CLAUDE)
    events = list(
        claude.messages.create(model="c", max_tokens=1024, messages=HELLO_CLAUDE, stream=True)
    )
    kinds = [event.type for event in events]
    # The SDK drops `ping`; the raw sequence is checked in test_anthropic_raw_sse_has_ping.
    assert kinds == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 16,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, delta = events[0], events[-2]
    assert start.type == "message_start"
    assert start.message.usage.input_tokens == whole.usage.input_tokens
    assert delta.type == "message_delta"
    assert delta.usage.output_tokens == whole.usage.output_tokens
    assert delta.delta.stop_reason == "end_turn"
    with claude.messages.stream(model="c", max_tokens=1024, messages=HELLO_CLAUDE) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "text"
    assert whole.content[0].type == "text"
    assert final.content[0].text == whole.content[0].text
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens  # not doubled by message_delta


def test_anthropic_raw_sse_has_ping(mock: MockUpstreamThread) -> None:
    body = json.dumps({"model": "c", "max_tokens": 8, "stream": True, "messages": HELLO}).encode()
    request = urllib.request.Request(
        mock.base_url + "/v1/messages", data=body, headers={"x-api-key": "k"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    names = [line[7:] for line in raw.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_anthropic_max_tokens_truncates(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="c", max_tokens=3, messages=HELLO_CLAUDE)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3
    assert message.content[0].type == "text"
    assert tokens(message.content[0].text) == 3


def test_anthropic_tool_use(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="c",
        max_tokens=1024,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=ANTHROPIC_TOOLS,
    )
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use"
    assert block.id.startswith("toolu_")
    assert block.name == "get_weather"
    assert isinstance(block.input, dict)
    assert set(block.input) == {"city"}
    arguments = json.dumps(block.input, separators=(",", ":"))
    assert message.usage.output_tokens == tokens("get_weather" + arguments)
    with claude.messages.stream(
        model="c",
        max_tokens=1024,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=ANTHROPIC_TOOLS,
        tool_choice={"type": "tool", "name": "get_time"},
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use"
    assert final.content[0].name == "get_time"
    assert final.content[0].input == {}


def test_anthropic_requires_max_tokens(mock: MockUpstreamThread) -> None:
    body = json.dumps({"model": "c", "messages": HELLO}).encode()
    status, error = post_raw(mock.base_url + "/v1/messages", body, {"x-api-key": "k"})
    assert status == 400
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"


def test_anthropic_models(claude: anthropic.Anthropic) -> None:
    models = list(claude.models.list())
    assert models
    assert all(model.type == "model" and model.id.startswith("claude") for model in models)


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_openai_forced_status(
    mock: MockUpstreamThread, oai: openai.OpenAI, status: int, error: type[openai.APIStatusError]
) -> None:
    with pytest.raises(error) as raised:
        oai.chat.completions.create(
            model="m",
            messages=HELLO,
            extra_headers={"x-mock-status": str(status)},
        )
    assert raised.value.status_code == status
    assert isinstance(raised.value.body, dict)
    assert set(raised.value.body) == {"message", "type", "param", "code"}  # the SDK unwraps
    assert mock.requests_by_path["/v1/chat/completions"] == 1  # max_retries=0: one attempt
    assert mock.stats.responses_by_status[status] == 1


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.ServiceUnavailableError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_anthropic_forced_status(
    claude: anthropic.Anthropic, status: int, error: type[anthropic.APIStatusError], kind: str
) -> None:
    with pytest.raises(error) as raised:
        claude.messages.create(
            model="c",
            max_tokens=10,
            messages=HELLO_CLAUDE,
            extra_headers={"x-mock-status": str(status)},
        )
    assert raised.value.status_code == status
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["type"] == "error"
    assert raised.value.body["error"]["type"] == kind


def test_forced_status_option_and_error_rate(mock: MockUpstreamThread, oai: openai.OpenAI) -> None:
    mock.options.forced_status = 503
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="m", messages=HELLO)
    mock.options.forced_status = None
    mock.options.error_rate = 1.0
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="m", messages=HELLO)
    mock.options.error_rate = 0.0
    assert oai.chat.completions.create(model="m", messages=HELLO).choices


def test_error_rate_is_a_fraction_reproducible_by_seed() -> None:
    def failures() -> list[bool]:
        with MockUpstreamThread(latency_ms=0, error_rate=0.3, seed=11) as running:
            client = openai.OpenAI(api_key="k", base_url=running.openai_base_url, max_retries=0)
            outcome = []
            for _ in range(60):
                try:
                    client.chat.completions.create(model="m", messages=HELLO)
                    outcome.append(False)
                except openai.InternalServerError:
                    outcome.append(True)
            return outcome

    first = failures()
    assert 6 <= sum(first) <= 30
    assert failures() == first


def test_missing_credential_is_401_in_each_envelope(mock: MockUpstreamThread) -> None:
    body = json.dumps({"model": "m", "max_tokens": 5, "messages": HELLO}).encode()
    status, error = post_raw(mock.openai_base_url + "/chat/completions", body)
    assert status == 401
    assert error["error"]["code"] == "invalid_api_key"
    status, error = post_raw(mock.base_url + "/v1/messages", body)
    assert status == 401
    assert error["error"]["type"] == "authentication_error"
    # Only a Bearer token counts: another scheme is no credential.
    basic = openai.OpenAI(
        api_key="k",
        base_url=mock.openai_base_url,
        max_retries=0,
        default_headers={"Authorization": "Basic dXNlcjpwYXNz"},
    )
    with pytest.raises(openai.AuthenticationError):
        basic.chat.completions.create(model="m", messages=HELLO)
    assert mock.stats.credentials == {}


def test_allow_anonymous(mock: MockUpstreamThread) -> None:
    mock.options.require_auth = False
    body = json.dumps({"model": "m", "messages": HELLO}).encode()
    status, reply = post_raw(mock.openai_base_url + "/chat/completions", body)
    assert status == 200
    assert reply["object"] == "chat.completion"


def test_credentials_are_fingerprinted_never_kept(
    mock: MockUpstreamThread, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    oai.chat.completions.create(model="m", messages=HELLO)
    claude.messages.create(model="c", max_tokens=5, messages=HELLO_CLAUDE)
    assert mock.stats.credentials == {fingerprint(OPENAI_KEY): 1, fingerprint(ANTHROPIC_KEY): 1}
    recorded = list(mock.stats.history)
    assert [r.path for r in recorded] == ["/v1/chat/completions", "/v1/messages"]
    assert recorded[0].body["messages"] == HELLO
    assert recorded[1].credential == fingerprint(ANTHROPIC_KEY)
    dump = repr(recorded)
    assert OPENAI_KEY not in dump
    assert ANTHROPIC_KEY not in dump
    assert "authorization" not in recorded[0].headers


def test_credential_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with (
            MockUpstream(latency_ms=0, access_log=True) as running,
            aiohttp.ClientSession() as session,
        ):
            for headers in ({"Authorization": f"Bearer {OPENAI_KEY}"}, {"x-api-key": OPENAI_KEY}):
                async with session.post(
                    running.openai_base_url + "/chat/completions",
                    json={"model": "m", "messages": HELLO},
                    headers=headers,
                ) as response:
                    assert response.status == 200

    with caplog.at_level(logging.DEBUG):
        asyncio.run(main())
    assert "/v1/chat/completions" in caplog.text  # the access log did log the requests
    assert OPENAI_KEY not in caplog.text


@pytest.mark.parametrize(
    ("path", "envelope_key"), [("/v1/chat/completions", "error"), ("/v1/messages", "type")]
)
def test_malformed_json_is_400(mock: MockUpstreamThread, path: str, envelope_key: str) -> None:
    for body in (b"{not json", b"[1, 2]", b""):
        status, error = post_raw(mock.base_url + path, body, {"x-api-key": "k"})
        assert status == 400
        assert envelope_key in error
        assert error["error"]["type"] == "invalid_request_error"


def test_invalid_fields_are_400(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="m", messages=[])
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="m", messages=HELLO, max_tokens=0)
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(
            model="m",
            messages=HELLO,
            extra_headers={"x-mock-status": "teapot"},
        )


def test_unknown_route_is_404(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.images.generate(model="m", prompt="x")


def drain(stream: Iterable[T], sink: list[T]) -> None:
    """Consume a stream into ``sink``, so that what arrived before an error can be checked."""
    for item in stream:
        sink.append(item)


def chunks_before_disconnect(oai: openai.OpenAI, after: int) -> list[ChatCompletionChunk]:
    """Stream a completion the mock cuts after ``after`` chunks: what arrived before the
    connection error the SDK must raise."""
    stream = oai.chat.completions.create(
        model="m",
        messages=HELLO,
        stream=True,
        extra_headers={"x-mock-disconnect-after-chunks": str(after)},
    )
    received: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIConnectionError):
        drain(stream, received)
    return received


def test_stream_disconnect_after_chunks(mock: MockUpstreamThread, oai: openai.OpenAI) -> None:
    received = chunks_before_disconnect(oai, 3)
    assert len(received) == 3
    assert all(chunk.choices[0].finish_reason is None for chunk in received)
    assert mock.stats.disconnects == 1


def test_anthropic_stream_disconnect(claude: anthropic.Anthropic) -> None:
    stream = claude.messages.create(
        model="c",
        max_tokens=100,
        messages=HELLO_CLAUDE,
        stream=True,
        extra_headers={"x-mock-disconnect-after-chunks": "5"},
    )
    received: list[RawMessageStreamEvent] = []
    # The Anthropic SDK lets the transport's error through unwrapped (an httpx2 error).
    with pytest.raises(Exception, match=r"incomplete chunked read"):
        drain(stream, received)
    # 5 events sent: message_start, content_block_start, ping (dropped by the SDK), 2 deltas.
    kinds = [event.type for event in received]
    assert kinds == ["message_start", "content_block_start", *["content_block_delta"] * 2]


def test_stream_ended_early_without_its_end(mock: MockUpstreamThread, oai: openai.OpenAI) -> None:
    """``x-mock-end-after-chunks``: a complete HTTP response whose stream lacks its end (no
    finish chunk, no ``[DONE]``): the SDK sees no error at all."""
    stream = oai.chat.completions.create(
        model="m",
        messages=HELLO,
        stream=True,
        extra_headers={"x-mock-end-after-chunks": "3"},
    )
    received = list(stream)
    assert len(received) == 3
    assert all(chunk.choices[0].finish_reason is None for chunk in received)
    assert mock.stats.disconnects == 0


def test_reply_text_option(
    mock: MockUpstreamThread, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    mock.options.reply_text = "Scripted: data: [DONE] and message_stop."
    completion = oai.chat.completions.create(model="m", messages=HELLO)
    assert completion.choices[0].message.content == mock.options.reply_text
    assert completion.usage is not None
    assert completion.usage.completion_tokens == tokens(mock.options.reply_text)
    streamed = claude.messages.create(model="c", max_tokens=100, messages=HELLO_CLAUDE, stream=True)
    text = "".join(
        event.delta.text
        for event in streamed
        if event.type == "content_block_delta" and event.delta.type == "text_delta"
    )
    assert text == mock.options.reply_text


def test_paced_stream_and_disconnect(mock: MockUpstreamThread, oai: openai.OpenAI) -> None:
    mock.options.chunk_delay_ms = 10
    mock.options.stream_chunks = 4
    started = time.perf_counter()
    chunks = list(oai.chat.completions.create(model="m", messages=HELLO, stream=True))
    assert len(chunks) == 1 + 4 + 1
    assert time.perf_counter() - started >= 5 * 0.01  # a delay between consecutive events
    assert len(chunks_before_disconnect(oai, 2)) == 2


def test_client_closing_a_stream_is_counted(mock: MockUpstreamThread, oai: openai.OpenAI) -> None:
    mock.options.chunk_delay_ms = 20
    stream = oai.chat.completions.create(model="m", messages=HELLO, stream=True)
    next(iter(stream))
    stream.close()
    deadline = time.monotonic() + 5
    while (mock.stats.client_disconnects == 0 or mock.stats.in_flight) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.01)
    assert mock.stats.client_disconnects == 1
    assert mock.stats.in_flight == 0


def test_non_stream_disconnect_sends_nothing(mock: MockUpstreamThread, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(
            model="m",
            messages=HELLO,
            extra_headers={"x-mock-disconnect-after-chunks": "0"},
        )
    assert mock.stats.disconnects == 1


def test_latency(mock: MockUpstreamThread, oai: openai.OpenAI) -> None:
    started = time.perf_counter()
    oai.chat.completions.create(
        model="m",
        messages=HELLO,
        extra_headers={"x-mock-latency-ms": "120"},
    )
    assert time.perf_counter() - started >= 0.12
    mock.options.latency_ms = 60
    started = time.perf_counter()
    oai.chat.completions.create(model="m", messages=HELLO)
    assert time.perf_counter() - started >= 0.06


# ---------------------------------------------------------------- in-process API


def test_async_mock_counts_requests_and_concurrency() -> None:
    async def main() -> None:
        async with MockUpstream(port=0, latency_ms=50) as running:
            assert running.port > 0
            client = openai.AsyncOpenAI(
                api_key="k", base_url=running.openai_base_url, max_retries=0
            )
            replies = await asyncio.gather(
                *(
                    client.chat.completions.create(model=f"m{i % 2}", messages=HELLO)
                    for i in range(10)
                )
            )
            assert len(replies) == 10
            assert running.requests_by_path == {"/v1/chat/completions": 10}
            assert running.stats.requests_by_model == {"m0": 5, "m1": 5}
            assert running.stats.max_in_flight == 10
            assert running.stats.in_flight == 0
            await client.close()

    asyncio.run(main())


def test_invalid_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        MockUpstream(error_rate=2.0)
    with pytest.raises(ValueError, match="stream_chunks"):
        MockOptions(stream_chunks=0)


def test_thread_runner_reports_port_in_use(mock: MockUpstreamThread) -> None:
    with pytest.raises(OSError):  # noqa: PT011 - EADDRINUSE's message differs across OSes
        MockUpstreamThread(port=mock.port).start()
