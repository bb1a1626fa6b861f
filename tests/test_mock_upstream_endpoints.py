"""The mock upstream's embeddings, legacy completions and token counting, called with the
official SDKs: deterministic answers whose usage follows the mock's token rule."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from spendgate.mock_upstream import MockUpstreamThread, text_tokens


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0, seed=7) as mock:
        yield mock


@pytest.fixture
def oai(mock: MockUpstreamThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock.openai_base_url, api_key="sk-test", max_retries=0)


def test_embeddings_are_deterministic_unit_vectors(oai: openai.OpenAI) -> None:
    first = oai.embeddings.create(model="e", input=["alpha", "beta"], encoding_format="float")
    again = oai.embeddings.create(model="e", input="alpha")  # base64, decoded by the SDK
    assert first.data[0].embedding == pytest.approx(again.data[0].embedding, rel=1e-6)
    assert first.data[0].embedding != first.data[1].embedding
    assert [item.index for item in first.data] == [0, 1]
    expected = text_tokens("alpha") + text_tokens("beta")
    assert first.usage.prompt_tokens == first.usage.total_tokens == expected
    wide = oai.embeddings.create(model="e", input=[1, 2, 3], dimensions=64)
    assert len(wide.data[0].embedding) == 64
    assert wide.usage.prompt_tokens == 3
    with pytest.raises(openai.BadRequestError):
        oai.embeddings.create(model="e", input=[1, "x"])  # type: ignore[list-item]


def test_a_legacy_completion_plain_and_streamed(oai: openai.OpenAI) -> None:
    plain = oai.completions.create(model="m", prompt="Once upon a time")
    assert plain.object == "text_completion"
    assert plain.usage is not None
    assert plain.usage.prompt_tokens == text_tokens("Once upon a time")
    assert plain.usage.completion_tokens <= 16  # OpenAI's default max_tokens
    chunks = list(
        oai.completions.create(
            model="m",
            prompt="Once upon a time",
            max_tokens=40,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(chunk.choices[0].text for chunk in chunks if chunk.choices)
    assert text
    final = chunks[-1]
    assert final.choices == []
    assert final.usage is not None
    assert final.usage.completion_tokens == len(text) // 4
    unasked = list(oai.completions.create(model="m", prompt="x", max_tokens=5, stream=True))
    assert all(chunk.choices for chunk in unasked)


def test_count_tokens_is_what_messages_would_report(mock: MockUpstreamThread) -> None:
    client = anthropic.Anthropic(base_url=mock.base_url, api_key="sk-ant-test", max_retries=0)
    messages: list[anthropic.types.MessageParam] = [
        {"role": "user", "content": "How long is this prompt?"}
    ]
    counted = client.messages.count_tokens(
        model="claude-sonnet-4", system="Be brief.", messages=messages
    )
    answer = client.messages.create(
        model="claude-sonnet-4", max_tokens=5, system="Be brief.", messages=messages
    )
    assert counted.input_tokens == answer.usage.input_tokens
