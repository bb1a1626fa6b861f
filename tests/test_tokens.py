"""Token estimate: calibration against the real o200k_base tokenizer on the bench corpus, the
bounds, and the arithmetic (C-level chunked sums) against a plain Python oracle."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.domain import tokens
from spendgate.domain.requests import Attachment, AttachmentKind, ChatRequest, Message, Protocol
from spendgate.domain.tokens import (
    AUDIO_TOKENS_PER_SECOND,
    IMAGE_TOKENS,
    IMAGE_TOKENS_LOWER,
    IMAGE_TOKENS_UPPER,
    MEAN_ABS_ERROR,
    MEAN_ABS_ERROR_LONG,
    MESSAGE_OVERHEAD,
    REPLY_PRIMING,
    TokenEstimate,
    estimate_input_tokens,
    estimate_text_tokens,
)

CORPUS = Path(__file__).parents[1] / "bench" / "data" / "corpus.jsonl"


def load_corpus() -> list[dict[str, str]]:
    return [json.loads(line) for line in CORPUS.read_text().splitlines()]


@pytest.fixture(scope="module")
def count() -> Callable[[str], int]:
    bindings = pytest.importorskip(
        "bpe_openai._bindings",
        reason="bpe-openai (a dev dependency) is the ground truth for calibration",
    )
    counter: Callable[[str], int] = bindings.tokenizer_for_encoding("o200k_base").count
    return counter


@pytest.fixture(scope="module")
def corpus(count: Callable[[str], int]) -> list[tuple[dict[str, str], int]]:
    return [(sample, count(sample["text"])) for sample in load_corpus()]


def one_message(text: str, role: str = "user") -> ChatRequest:
    return ChatRequest(model="m", messages=(Message(role, text),))


# --- calibration against the real tokenizer ---------------------------------------------------


def test_corpus_is_varied_enough() -> None:
    samples = load_corpus()
    categories = {sample["category"] for sample in samples}
    assert len(samples) >= 150
    assert {"english_prose", "code_python", "json", "chinese", "japanese", "korean"} <= categories
    assert {"cyrillic", "arabic", "emoji_mixed", "urls_base64", "markdown", "yaml"} <= categories
    sizes = [len(sample["text"].encode()) for sample in samples]
    assert min(len(sample["text"]) for sample in samples) >= 20
    assert max(sizes) >= 8000


def test_every_sample_sent_as_a_message_lies_within_the_bounds(
    corpus: list[tuple[dict[str, str], int]], count: Callable[[str], int]
) -> None:
    misses = []
    for sample, exact in corpus:
        # OpenAI chat framing, exactly as the cookbook counts it: 3 + role per message, 3 to
        # prime the reply.
        truth = exact + 3 + count("user") + REPLY_PRIMING
        bounds = estimate_input_tokens(one_message(sample["text"]))
        if not bounds.lower <= truth <= bounds.upper:
            misses.append((sample["id"], bounds, truth))
    assert misses == []


def test_mean_error_is_below_the_documented_figures(
    corpus: list[tuple[dict[str, str], int]],
) -> None:
    errors = [(estimate_text_tokens(s["text"]) - exact) / exact for s, exact in corpus]
    long = [
        abs(error)
        for (sample, _), error in zip(corpus, errors, strict=True)
        if len(sample["text"].encode()) >= 200
    ]
    assert statistics.mean(abs(error) for error in errors) < MEAN_ABS_ERROR
    assert statistics.mean(long) < MEAN_ABS_ERROR_LONG
    # Calibrated: neither systematically high nor low.
    assert abs(statistics.mean(errors)) < 0.03


def test_each_category_is_roughly_right(corpus: list[tuple[dict[str, str], int]]) -> None:
    by_category: dict[str, list[float]] = {}
    for sample, exact in corpus:
        if len(sample["text"].encode()) >= 200:  # short texts are a few tokens either way
            error = (estimate_text_tokens(sample["text"]) - exact) / exact
            by_category.setdefault(sample["category"], []).append(abs(error))
    worst = {category: statistics.mean(errors) for category, errors in by_category.items()}
    assert max(worst.values()) < 0.2, worst


def test_the_estimate_beats_the_four_characters_per_token_rule(
    corpus: list[tuple[dict[str, str], int]],
) -> None:
    ours = statistics.mean(abs(estimate_text_tokens(s["text"]) - e) / e for s, e in corpus)
    naive = statistics.mean(abs(len(s["text"]) / 4 - e) / e for s, e in corpus)
    assert ours < naive / 2


def test_messages_add_their_framing(count: Callable[[str], int]) -> None:
    conversation = [
        ("system", "You are a terse assistant."),
        ("user", "What is the capital of France?"),
        ("assistant", "Paris."),
    ]
    request = ChatRequest("m", tuple(Message(role, text) for role, text in conversation))
    truth = sum(count(text) + 3 + count(role) for role, text in conversation) + REPLY_PRIMING
    bounds = estimate_input_tokens(request)
    assert bounds.lower <= truth <= bounds.upper
    assert abs(bounds.point - truth) <= 3


# --- the bounds -------------------------------------------------------------------------------


def test_empty_text_is_zero_tokens() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_input_tokens(one_message("")) == TokenEstimate(
        MESSAGE_OVERHEAD + REPLY_PRIMING,
        MESSAGE_OVERHEAD + REPLY_PRIMING,
        MESSAGE_OVERHEAD + REPLY_PRIMING,
    )


@given(st.text(min_size=1))
def test_any_non_empty_text_is_at_least_one_token(text: str) -> None:
    assert estimate_text_tokens(text) >= 1


@given(st.text(), st.text())
def test_longer_text_never_has_fewer_tokens(head: str, tail: str) -> None:
    whole = estimate_text_tokens(head + tail)
    assert whole >= estimate_text_tokens(head)
    assert whole >= estimate_text_tokens(tail)
    # ...and not much more than its parts (one intercept, rounding).
    assert whole <= estimate_text_tokens(head) + estimate_text_tokens(tail) + 1


def test_longer_corpus_prefixes_have_more_tokens() -> None:
    for sample in load_corpus()[::10]:
        text = sample["text"]
        counts = [estimate_text_tokens(text[:end]) for end in range(0, len(text) + 1, 97)]
        assert counts == sorted(counts)


attachments = st.builds(
    Attachment,
    kind=st.sampled_from(list(AttachmentKind)),
    size=st.one_of(st.none(), st.integers(min_value=0, max_value=10_000_000)),
)
messages = st.builds(
    Message,
    role=st.sampled_from(["system", "user", "assistant", "tool"]),
    text=st.text(max_size=300),
    image_count=st.integers(min_value=0, max_value=3),
)
requests = st.builds(
    ChatRequest,
    model=st.just("m"),
    messages=st.lists(messages, min_size=1, max_size=6).map(tuple),
    tools_text=st.one_of(st.just(""), st.text(max_size=300)),
    protocol=st.sampled_from(list(Protocol)),
    attachments=st.lists(attachments, max_size=3).map(tuple),
)


@given(requests)
def test_bounds_are_ordered(request: ChatRequest) -> None:
    estimate = estimate_input_tokens(request)
    assert 0 <= estimate.lower <= estimate.point <= estimate.upper


def test_images_add_tokens() -> None:
    text = one_message("What is in this picture?")
    with_images = ChatRequest(model="m", messages=(Message("user", text.messages[0].text, 2),))
    plain, pictured = estimate_input_tokens(text), estimate_input_tokens(with_images)
    assert pictured.point - plain.point == 2 * IMAGE_TOKENS
    assert pictured.lower - plain.lower == 2 * IMAGE_TOKENS_LOWER
    assert pictured.upper - plain.upper == 2 * IMAGE_TOKENS_UPPER
    assert IMAGE_TOKENS_LOWER < IMAGE_TOKENS < IMAGE_TOKENS_UPPER


def parsed(protocol: Protocol, **body: Any) -> ChatRequest:
    payload: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
    payload.update(body)
    if protocol is Protocol.ANTHROPIC:
        return ChatRequest.from_anthropic({"max_tokens": 100, **payload})
    if protocol is Protocol.RESPONSES:
        del payload["messages"]
        return ChatRequest.from_responses({"input": "Hi", **payload})
    return ChatRequest.from_openai(payload)


WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city, in Celsius unless asked otherwise",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city"],
    },
}


@pytest.mark.parametrize("protocol", [Protocol.OPENAI, Protocol.ANTHROPIC, Protocol.RESPONSES])
def test_tools_add_tokens(protocol: Protocol) -> None:
    if protocol is Protocol.OPENAI:
        tools = [{"type": "function", "function": WEATHER}]
    elif protocol is Protocol.RESPONSES:
        tools = [{"type": "function", **WEATHER}]
    else:
        tools = [{**WEATHER, "input_schema": WEATHER["parameters"]}]
    plain = estimate_input_tokens(parsed(protocol))
    with_tools = estimate_input_tokens(parsed(protocol, tools=tools))
    schema = estimate_text_tokens(parsed(protocol, tools=tools).tools_text)
    assert with_tools.point >= plain.point + schema
    assert with_tools.lower > plain.lower
    # The upper bound allows for the largest tool-use system prompt whatever the protocol.
    assert with_tools.upper >= plain.upper + schema + 530
    more = estimate_input_tokens(parsed(protocol, tools=tools * 3))
    assert more.point > with_tools.point


def test_anthropic_point_includes_its_tool_system_prompt() -> None:
    tools = [{**WEATHER, "input_schema": WEATHER["parameters"]}]
    openai_tools = [{"type": "function", "function": WEATHER}]
    anthropic = estimate_input_tokens(parsed(Protocol.ANTHROPIC, tools=tools))
    openai = estimate_input_tokens(parsed(Protocol.OPENAI, tools=openai_tools))
    assert anthropic.point - openai.point > 300


def test_many_short_messages_keep_a_margin_each(count: Callable[[str], int]) -> None:
    texts = ["ok", "Thanks!", "yes please", "no", "🎉🎉🎉", "数据", "Где?"] * 5
    request = ChatRequest(model="m", messages=tuple(Message("user", text) for text in texts))
    truth = sum(count(text) + 3 + count("user") for text in texts) + REPLY_PRIMING
    bounds = estimate_input_tokens(request)
    assert bounds.lower <= truth <= bounds.upper


def test_scaled_rounds_the_bounds_outwards() -> None:
    assert TokenEstimate(10, 20, 30).scaled(1.25) == TokenEstimate(12, 25, 38)
    assert TokenEstimate(10, 20, 30).scaled(1.0) == TokenEstimate(10, 20, 30)
    assert TokenEstimate(10, 20, 30, unbounded=True).scaled(2).unbounded


# --- input that is not text ------------------------------------------------------------------


def with_attachments(*found: Attachment) -> TokenEstimate:
    return estimate_input_tokens(
        ChatRequest("m", (Message("user", "Read this."),), attachments=found)
    )


PLAIN = estimate_input_tokens(one_message("Read this."))


def test_a_text_document_costs_what_its_text_costs() -> None:
    text = "The quarterly ledger shows steady spend across every project. " * 6400  # 400 KB
    document = {"type": "document", "source": {"type": "text", "data": text}}
    request = ChatRequest.from_anthropic(
        {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [document]}]}
    )
    assert estimate_input_tokens(request) == estimate_input_tokens(one_message(text))
    assert estimate_input_tokens(request).upper > len(text.encode()) / 4  # the mock's 4 B/token


@pytest.mark.parametrize("size", [0, 1, 10, 5_000, 1_000_000])
def test_an_unknown_part_is_bounded_by_its_bytes_and_never_free(size: int) -> None:
    estimate = with_attachments(Attachment(AttachmentKind.OTHER, size))
    added = estimate.upper - PLAIN.upper
    assert added >= max(size, IMAGE_TOKENS_UPPER)  # a token is at least one byte
    assert estimate.lower == PLAIN.lower
    assert not estimate.unbounded


def test_audio_is_bounded_by_its_longest_possible_duration() -> None:
    one_minute_mp3 = 60 * 16_000  # 128 kbit/s
    estimate = with_attachments(Attachment(AttachmentKind.AUDIO, one_minute_mp3))
    assert estimate.point - PLAIN.point == pytest.approx(60 * AUDIO_TOKENS_PER_SECOND, abs=1)
    # At 8 kbit/s, the lowest MP3 bitrate, the same bytes would last 16 minutes.
    assert estimate.upper - PLAIN.upper >= 16 * 60 * AUDIO_TOKENS_PER_SECOND
    assert with_attachments(Attachment(AttachmentKind.AUDIO, 0)).upper > PLAIN.upper


@pytest.mark.parametrize(
    "attachment",
    [
        Attachment(AttachmentKind.DOCUMENT, 900),  # a PDF: text + page images, not from bytes
        Attachment(AttachmentKind.DOCUMENT, None),  # a file id or a URL
        Attachment(AttachmentKind.AUDIO, None),
    ],
)
def test_input_of_unknown_size_is_bounded_by_the_context_window(attachment: Attachment) -> None:
    estimate = with_attachments(attachment)
    assert estimate.unbounded
    assert estimate.upper_within(128_000) == 128_000
    assert estimate.upper_within(10) == estimate.upper  # never below what is known
    assert PLAIN.upper_within(128_000) == PLAIN.upper


# --- arithmetic --------------------------------------------------------------------------------


def oracle(text: str) -> int:
    """The model evaluated with a plain Python loop (slow, obviously right)."""
    if not text:
        return 0
    data = text.encode("utf-8", "surrogatepass")
    units = sum(tokens._WEIGHTS[byte] for byte in data)
    point = tokens._INTERCEPT + units / tokens._UNIT + tokens._ASTRAL_SURPLUS * data.count(0xF0)
    return max(1, round(point))


@settings(max_examples=300)
@given(
    st.one_of(
        st.text(max_size=3000),
        st.text(alphabet=st.characters(max_codepoint=0x7F), min_size=1000, max_size=5000),
        st.text(alphabet="🎉😂👍你好мир", min_size=300, max_size=1500),
    )
)
def test_chunked_c_level_sum_equals_the_plain_sum(text: str) -> None:
    assert estimate_text_tokens(text) == oracle(text)


def test_chunk_size_cannot_overflow_the_checksum() -> None:
    assert tokens._CHUNK * max(tokens._WEIGHTS) < 65521
    assert len(tokens._WEIGHTS) == 256
    # Bytes that never occur in UTF-8 weigh nothing; every ASCII byte weighs under a token.
    assert all(weight == 0 for weight in tokens._WEIGHTS[0xF5:])
    assert all(weight < tokens._UNIT for weight in tokens._WEIGHTS[:0x80])


def test_lone_surrogates_from_json_do_not_raise() -> None:
    text = json.loads('"broken emoji \\ud83d here"')
    assert estimate_text_tokens(text) > 0
    assert estimate_input_tokens(one_message(text)).upper > 0


def test_a_mebibyte_is_estimated_without_a_python_loop_per_character() -> None:
    text = (load_corpus()[0]["text"] + " ") * (2**20 // (len(load_corpus()[0]["text"]) + 1))
    started = time.perf_counter()
    estimate_text_tokens(text)
    elapsed = time.perf_counter() - started
    # ~3-6 ms measured; a per-character Python loop takes well over 100 ms.
    assert elapsed < 0.1
