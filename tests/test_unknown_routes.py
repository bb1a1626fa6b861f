"""Unknown routes answer 404, and known routes called with another method 405 (with
``allow``), in the envelope of the API family asked, so both official SDKs raise their own
errors with a message naming the routes spendgate serves. The admin API and the console keep
their own 404s."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from gateway_support import (
    ONE_PROVIDER,
    ONE_PROVIDER_ENV,
    Served,
    anthropic_client,
    http,
    openai_client,
    serve_config,
)
from spendgate.mock_upstream.runner import MockUpstreamThread

ROUTES = (
    "POST /v1/chat/completions",
    "POST /v1/messages",
    "POST /v1/embeddings",
    "POST /v1/completions",
    "POST /v1/messages/count_tokens",
    "GET /v1/models",
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    database: Path = tmp_path_factory.mktemp("routes") / "journal.db"
    env = {**ONE_PROVIDER_ENV, "SPENDGATE_ADMIN_TOKEN": "sg-admin"}
    with (
        MockUpstreamThread(latency_ms=0) as mock,
        serve_config(ONE_PROVIDER.format(mock=mock.base_url), env, database=database) as served,
    ):
        yield served


def _names_every_route(message: str) -> None:
    for route in ROUTES:
        assert route in message


def test_the_openai_sdk_gets_its_not_found_error(served: Served) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        openai_client(served, "sg-alice").images.generate(model="dall-e-3", prompt="a ledger")
    error = missing.value
    assert "POST /v1/images/generations" in error.message
    _names_every_route(error.message)
    assert error.code == "unknown_route"
    assert error.type == "invalid_request_error"
    assert error.param is None


def test_the_anthropic_sdk_gets_its_not_found_error(served: Served) -> None:
    client = anthropic_client(served, "sg-alice")
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.batches.list()  # under /v1/messages: Anthropic's family by its path
    assert "GET /v1/messages/batches" in missing.value.message
    _names_every_route(missing.value.message)
    assert missing.value.body["type"] == "error"  # type: ignore[index]
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.models.retrieve("claude-sonnet-4")  # anthropic-version names the family
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


@pytest.mark.parametrize(
    ("method", "path", "allow", "anthropic_family"),
    [
        ("GET", "/v1/chat/completions", "POST", False),
        ("PUT", "/v1/embeddings", "POST", False),
        ("GET", "/v1/completions", "POST", False),
        ("GET", "/v1/messages", "POST", True),
        ("GET", "/v1/messages/count_tokens", "POST", True),
        ("POST", "/v1/models", "GET", False),
    ],
)
def test_a_known_route_with_another_method_is_405(
    served: Served, method: str, path: str, allow: str, anthropic_family: bool
) -> None:
    reply = http(method, served.url + path)
    assert reply.status_code == 405
    assert reply.headers["allow"] == allow
    body = reply.json()
    if anthropic_family:
        assert body["type"] == "error"
        assert body["error"]["type"] == "api_error"
    else:
        assert body["error"]["code"] == "method_not_allowed"
    message = body["error"]["message"]
    assert f"answers {allow} only" in message
    _names_every_route(message)


def test_the_anthropic_version_header_picks_anthropics_envelope(served: Served) -> None:
    reply = http("POST", served.url + "/v1/complete", **{"anthropic-version": "2023-06-01"})
    assert reply.status_code == 404
    assert reply.json()["error"]["type"] == "not_found_error"
    plain = http("POST", served.url + "/v1/complete")
    assert plain.json()["error"]["type"] == "invalid_request_error"


def test_the_admin_api_and_console_keep_their_own_404s(served: Served) -> None:
    admin = http("GET", served.url + "/api/v1/no-such-thing", authorization="Bearer sg-admin")
    assert admin.status_code == 404
    assert "proxy routes" not in admin.text
    console = http("GET", served.url + "/console/no-such-page")
    assert console.status_code == 404
    assert "proxy routes" not in console.text
