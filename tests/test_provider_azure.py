"""Azure OpenAI as a provider kind (issue 14), end to end: the official SDKs call the gateway,
which calls a mock upstream speaking Azure's shapes — the deployment in the URL path, the
``api-version`` query parameter, the key in an ``api-key`` header. Assertions are on what the
mock received."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from cloud_support import KEY, cloud_gateway, last_request
from gateway_support import (
    HELLO,
    Served,
    anthropic_client,
    http,
    open_reservations,
    openai_client,
    stored,
)
from spendgate.mock_upstream.runner import MockUpstreamThread
from spendgate.mock_upstream.server import fingerprint

PATH = "/openai/deployments/gpt4o-prod/chat/completions"


def _provider(mock: MockUpstreamThread) -> str:
    return (
        f'{{id: cloud, kind: azure, base_url: "{mock.base_url}", api_version: "2024-10-21", '
        "api_key_env: CLOUD_KEY}"
    )


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0, api_key=KEY) as mock:
        yield mock


@pytest.fixture
def served(mock: MockUpstreamThread, tmp_path: Path) -> Iterator[Served]:
    with cloud_gateway(_provider(mock), "gpt-4o", "gpt4o-prod", KEY, tmp_path) as served:
        yield served


def _check_azure_shape(mock: MockUpstreamThread) -> None:
    seen = last_request(mock)
    assert seen.path == PATH  # the deployment, from the model's upstream_id
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.credential == fingerprint(KEY)  # sent as api-key ...
    assert "authorization" not in seen.headers  # ... and not as a bearer token


def test_a_chat_call_reaches_the_deployment_url_with_api_version_and_api_key(
    served: Served, mock: MockUpstreamThread
) -> None:
    raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO, max_tokens=40
    )
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-spendgate-model"] == "gpt-4o"
    _check_azure_shape(mock)
    stored_decision = stored(served, raw.headers["x-spendgate-decision-id"])
    assert stored_decision.decision.provider == "cloud"
    assert stored_decision.decision.usage is not None  # Azure's usage, in OpenAI's shape
    assert not stored_decision.usage_estimated
    assert stored_decision.decision.actual_cost_usd


def test_a_streamed_chat_call_reaches_the_deployment_and_is_settled_on_its_usage(
    served: Served, mock: MockUpstreamThread
) -> None:
    raw = openai_client(served, "sg-alice").chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO, max_tokens=40, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text
    _check_azure_shape(mock)
    assert last_request(mock).body["stream_options"] == {"include_usage": True}
    stored_decision = stored(served, raw.headers["x-spendgate-decision-id"])
    assert stored_decision.decision.status == "ok"
    assert not stored_decision.usage_estimated
    assert open_reservations(served) == 0


def test_an_anthropic_client_is_translated_for_azure(
    served: Served, mock: MockUpstreamThread
) -> None:
    message = anthropic_client(served, "sg-alice").messages.create(
        model="gpt-4o", max_tokens=40, messages=HELLO
    )
    assert message.content[0].text  # type: ignore[union-attr]
    _check_azure_shape(mock)
    assert last_request(mock).body["messages"] == HELLO  # sent as OpenAI chat


def test_a_wrong_key_surfaces_as_an_upstream_auth_failure(
    mock: MockUpstreamThread, tmp_path: Path
) -> None:
    with cloud_gateway(_provider(mock), "gpt-4o", "gpt4o-prod", "wrong-key-456", tmp_path) as s:
        with pytest.raises(openai.APIStatusError) as failed:
            openai_client(s, "sg-alice").chat.completions.create(
                model="gpt-4o", messages=HELLO, max_tokens=40
            )
        assert failed.value.status_code == 502
        assert failed.value.code == "upstream_error"
        assert "Access denied due to invalid subscription key" in failed.value.message
        assert failed.value.response.headers["x-should-retry"] == "false"
        assert "wrong-key-456" not in failed.value.response.text
        assert open_reservations(s) == 0
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
