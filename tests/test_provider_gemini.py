"""Google Gemini (its OpenAI-compatible endpoint) as a provider kind (issue 14), end to end:
the official SDKs call the gateway, which calls a mock upstream speaking Gemini's shapes —
``/v1beta/openai/chat/completions`` with the Gemini key as a bearer token, its errors wrapped
in a list. Assertions are on what the mock received."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from cloud_support import KEY, Cloud, last_request
from gateway_support import Served, http, open_reservations
from spendgate.domain.models import Provider, ProviderKind
from spendgate.domain.requests import Protocol
from spendgate.domain.translate import StreamObserver
from spendgate.mock_upstream.runner import MockUpstreamThread
from spendgate.mock_upstream.server import fingerprint
from spendgate.providers import SessionPool, build_upstream

PATH = "/v1beta/openai/chat/completions"
CLOUD = Cloud(
    '{id: cloud, kind: gemini, base_url: "{base}/v1beta/openai", api_key_env: CLOUD_KEY}',
    model="flash",
    upstream="gemini-2.0-flash",
)


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0, api_key=KEY) as upstream:
        yield upstream


@pytest.fixture
def served(mock: MockUpstreamThread, tmp_path: Path) -> Iterator[Served]:
    with CLOUD.gateway(mock, KEY, tmp_path) as gateway:
        yield gateway


def _check_gemini_shape(mock: MockUpstreamThread) -> None:
    seen = last_request(mock)
    assert seen.path == PATH
    assert seen.query == {}
    assert seen.credential == fingerprint(KEY)
    assert seen.headers.get("api-key") is None  # the key travels as a bearer token
    assert seen.body["model"] == "gemini-2.0-flash"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_chat_call_reaches_geminis_openai_endpoint(
    served: Served, mock: MockUpstreamThread, stream: bool
) -> None:
    answer = CLOUD.chat(served, stream=stream)
    assert answer.text
    assert answer.model_header == "flash"
    _check_gemini_shape(mock)
    assert answer.stored.decision.provider == "cloud"
    assert answer.stored.decision.status == "ok"
    assert not answer.stored.usage_estimated
    assert open_reservations(served) == 0


def test_an_anthropic_client_is_translated_for_gemini(
    served: Served, mock: MockUpstreamThread
) -> None:
    assert CLOUD.anthropic_chat(served)
    _check_gemini_shape(mock)


def test_a_wrong_key_surfaces_as_an_upstream_auth_failure(
    mock: MockUpstreamThread, tmp_path: Path
) -> None:
    error = CLOUD.refused(mock, "AIza-wrong-key", tmp_path)
    assert error.status_code == 502
    assert error.code == "upstream_error"
    # Gemini's message, read out of its list-wrapped error body.
    assert "API key not valid. Please pass a valid API key." in error.message
    assert "AIza-wrong-key" not in error.response.text


def test_the_mock_answers_a_wrong_key_as_gemini_does(mock: MockUpstreamThread) -> None:
    wrong = http("POST", mock.base_url + PATH, json={}, authorization="Bearer nope-nope")
    assert wrong.status_code == 400
    assert wrong.json()[0]["error"]["status"] == "INVALID_ARGUMENT"


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
