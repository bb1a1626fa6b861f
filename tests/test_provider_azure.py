"""Azure OpenAI as a provider kind (issue 14), end to end: the official SDKs call the gateway,
which calls a mock upstream speaking Azure's shapes — the deployment in the URL path, the
``api-version`` query parameter, the key in an ``api-key`` header. Assertions are on what the
mock received."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_support import KEY, Cloud, last_request
from gateway_support import HELLO, Served, http, open_reservations
from spendgate.mock_upstream.runner import MockUpstreamThread
from spendgate.mock_upstream.server import fingerprint

PATH = "/openai/deployments/gpt4o-prod/chat/completions"
CLOUD = Cloud(
    '{id: cloud, kind: azure, base_url: "{base}", api_version: 2024-10-21, api_key_env: CLOUD_KEY}',
    model="gpt-4o",
    upstream="gpt4o-prod",
)


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0, api_key=KEY) as upstream:
        yield upstream


@pytest.fixture
def served(mock: MockUpstreamThread, tmp_path: Path) -> Iterator[Served]:
    with CLOUD.gateway(mock, KEY, tmp_path) as gateway:
        yield gateway


def _check_azure_shape(mock: MockUpstreamThread) -> None:
    seen = last_request(mock)
    assert seen.path == PATH  # the deployment, from the model's upstream_id
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.credential == fingerprint(KEY)  # sent as api-key ...
    assert "authorization" not in seen.headers  # ... and not as a bearer token


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_chat_call_reaches_the_deployment_url_with_api_version_and_api_key(
    served: Served, mock: MockUpstreamThread, stream: bool
) -> None:
    answer = CLOUD.chat(served, stream=stream)
    assert answer.text
    assert answer.model_header == "gpt-4o"
    _check_azure_shape(mock)
    if stream:  # asked for its usage chunk, as OpenAI's streams are
        assert last_request(mock).body["stream_options"] == {"include_usage": True}
    decision = answer.stored.decision
    assert decision.provider == "cloud"
    assert decision.status == "ok"
    assert decision.usage is not None  # Azure's usage, in OpenAI's shape: settled exactly
    assert not answer.stored.usage_estimated
    assert decision.actual_cost_usd
    assert open_reservations(served) == 0


def test_an_anthropic_client_is_translated_for_azure(
    served: Served, mock: MockUpstreamThread
) -> None:
    assert CLOUD.anthropic_chat(served)
    _check_azure_shape(mock)
    assert last_request(mock).body["messages"] == HELLO  # sent as OpenAI chat


def test_a_wrong_key_surfaces_as_an_upstream_auth_failure(
    mock: MockUpstreamThread, tmp_path: Path
) -> None:
    error = CLOUD.refused(mock, "wrong-key-456", tmp_path)
    assert error.status_code == 502
    assert error.code == "upstream_error"
    assert "Access denied due to invalid subscription key" in error.message
    assert error.response.headers["x-should-retry"] == "false"
    assert "wrong-key-456" not in error.response.text
    assert last_request(mock).path == PATH


def test_the_mock_refuses_what_azure_refuses(mock: MockUpstreamThread) -> None:
    body = {"messages": HELLO}
    url = mock.base_url + PATH
    no_version = http("POST", url, json=body, **{"api-key": KEY})
    assert no_version.status_code == 404
    assert no_version.json() == {"error": {"code": "404", "message": "Resource not found"}}
    bearer = http("POST", url + "?api-version=2024-10-21", json=body, authorization=f"Bearer {KEY}")
    assert bearer.status_code == 401
    assert "missing subscription key" in bearer.json()["error"]["message"]
    good = http("POST", url + "?api-version=2024-10-21", json=body, **{"api-key": KEY})
    assert good.status_code == 200
    assert good.json()["model"] == "gpt4o-prod"
