"""Google Gemini (its OpenAI-compatible endpoint) as a provider kind (issue 14), end to end:
the official SDKs call the gateway, which calls a mock upstream speaking Gemini's shapes —
``/v1beta/openai/chat/completions`` with the Gemini key as a bearer token, its errors wrapped
in a list. Assertions are on what the mock received."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import orjson
import pytest

from cloud_support import KEY, cloud_gateway, last_request
from gateway_support import (
    HELLO,
    Served,
    anthropic_client,
    open_reservations,
    openai_client,
    stored,
)
from spendgate.domain.models import Provider, ProviderKind
from spendgate.domain.requests import Protocol
from spendgate.domain.translate import StreamObserver
from spendgate.mock_upstream.runner import MockUpstreamThread
from spendgate.mock_upstream.server import fingerprint
from spendgate.providers import SessionPool, build_upstream

PATH = "/v1beta/openai/chat/completions"


def _provider(mock: MockUpstreamThread) -> str:
    return (
        f'{{id: cloud, kind: gemini, base_url: "{mock.base_url}/v1beta/openai", '
        "api_key_env: CLOUD_KEY}"
    )


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0, api_key=KEY) as mock:
        yield mock


@pytest.fixture
def served(mock: MockUpstreamThread, tmp_path: Path) -> Iterator[Served]:
    with cloud_gateway(_provider(mock), "flash", "gemini-2.0-flash", KEY, tmp_path) as served:
        yield served


def _check_gemini_shape(mock: MockUpstreamThread) -> None:
    seen = last_request(mock)
    assert seen.path == PATH
    assert seen.credential == fingerprint(KEY)  # the Gemini key, as a bearer token
    assert seen.body["model"] == "gemini-2.0-flash"


def test_a_chat_call_reaches_geminis_openai_endpoint(
    served: Served, mock: MockUpstreamThread
) -> None:
    raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="flash", messages=HELLO, max_tokens=40
    )
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-spendgate-model"] == "flash"
    _check_gemini_shape(mock)
    stored_decision = stored(served, raw.headers["x-spendgate-decision-id"])
    assert stored_decision.decision.provider == "cloud"
    assert not stored_decision.usage_estimated


def test_a_streamed_chat_call_is_settled_on_its_usage(
    served: Served, mock: MockUpstreamThread
) -> None:
    raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="flash", messages=HELLO, max_tokens=40, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text
    _check_gemini_shape(mock)
    stored_decision = stored(served, raw.headers["x-spendgate-decision-id"])
    assert stored_decision.decision.status == "ok"
    assert not stored_decision.usage_estimated
    assert open_reservations(served) == 0


def test_an_anthropic_client_is_translated_for_gemini(
    served: Served, mock: MockUpstreamThread
) -> None:
    message = anthropic_client(served, "sg-alice").messages.create(
        model="flash", max_tokens=40, messages=HELLO
    )
    assert message.content[0].text  # type: ignore[union-attr]
    _check_gemini_shape(mock)


def test_a_wrong_key_surfaces_as_an_upstream_auth_failure(
    mock: MockUpstreamThread, tmp_path: Path
) -> None:
    provider = _provider(mock)
    with cloud_gateway(provider, "flash", "gemini-2.0-flash", "AIza-wrong-key", tmp_path) as s:
        with pytest.raises(openai.APIStatusError) as failed:
            openai_client(s, "sg-alice").chat.completions.create(
                model="flash", messages=HELLO, max_tokens=40
            )
        assert failed.value.status_code == 502
        assert failed.value.code == "upstream_error"
        # Gemini's message, read out of its list-wrapped error body.
        assert "API key not valid. Please pass a valid API key." in failed.value.message
        assert "AIza-wrong-key" not in failed.value.response.text
        assert open_reservations(s) == 0


def test_the_default_base_url_is_googles_openai_endpoint() -> None:
    provider = Provider(id="g", kind=ProviderKind.GEMINI, api_key_env="G_KEY")
    upstream = build_upstream(provider, SessionPool(limit=1), {"G_KEY": "k-123456"})
    assert upstream.url(Protocol.OPENAI) == (
        "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"
    )
    assert upstream.credential_headers() == {"authorization": "Bearer k-123456"}


def test_usage_repeated_on_every_chunk_is_counted_once() -> None:
    """Gemini's streams may carry cumulative usage on every chunk: the last one counts."""
    observer = StreamObserver(Protocol.OPENAI)
    for completion in (3, 7, 12):
        chunk = {
            "choices": [{"index": 0, "delta": {"content": "x"}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": completion, "total_tokens": 0},
        }
        observer.feed(b"data: " + orjson.dumps(chunk) + b"\n\n")
    observer.feed(b"data: [DONE]\n\n")
    observer.close()
    assert observer.usage is not None
    assert (observer.usage.input_tokens, observer.usage.output_tokens) == (9, 12)
