"""Where each cloud kind sends each API: Azure OpenAI names the deployment in the path
(Responses in the body), Gemini's OpenAI-compatible endpoint has chat and embeddings only,
and a protocol a kind does not speak is refused before any call (see test_endpoints'
``unserved`` path for the client's 400)."""

from __future__ import annotations

import pytest

from spendgate.config.errors import ConfigError
from spendgate.config.loader import parse_config
from spendgate.domain.models import Provider, ProviderKind
from spendgate.domain.requests import Protocol
from spendgate.providers.base import UpstreamCall
from spendgate.providers.registry import build_upstream
from spendgate.providers.session import SessionPool

AZURE = Provider(
    id="az",
    kind=ProviderKind.AZURE,
    base_url="https://acme.openai.azure.com",
    api_version="2025-03-01-preview",
)
GEMINI = Provider(id="gm", kind=ProviderKind.GEMINI)


@pytest.mark.parametrize(
    ("protocol", "path"),
    [
        (Protocol.OPENAI, "/openai/deployments/gpt%2F4o/chat/completions"),
        (Protocol.EMBEDDINGS, "/openai/deployments/gpt%2F4o/embeddings"),
        (Protocol.COMPLETIONS, "/openai/deployments/gpt%2F4o/completions"),
        (Protocol.RESPONSES, "/openai/responses"),
    ],
)
def test_azure_sends_each_api_to_its_deployment_path(protocol: Protocol, path: str) -> None:
    upstream = build_upstream(AZURE, SessionPool(), env={})
    assert protocol in upstream.protocols
    url = upstream.call_url(UpstreamCall(protocol, body={"model": "gpt/4o"}))
    assert url == f"https://acme.openai.azure.com{path}?api-version=2025-03-01-preview"


def test_gemini_speaks_chat_and_embeddings_only() -> None:
    upstream = build_upstream(GEMINI, SessionPool(), env={})
    assert upstream.protocols == {Protocol.OPENAI, Protocol.EMBEDDINGS}
    base = "https://generativelanguage.googleapis.com/v1beta/openai"
    assert upstream.url(Protocol.EMBEDDINGS) == f"{base}/embeddings"
    assert upstream.url(Protocol.OPENAI) == f"{base}/chat/completions"


def test_an_embeddings_deployment_on_an_anthropic_provider_is_refused_by_config() -> None:
    text = """
providers:
  - {id: oa, kind: openai, api_key_env: X}
  - {id: claude, kind: anthropic, api_key_env: Y}
models:
  - id: embed
    capabilities: [embeddings]
    deployments: [{provider: oa, upstream_id: text-embedding-3-small}, {provider: claude}]
"""
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "test.yaml")
    assert "'claude' is of kind anthropic, which has no embeddings API" in str(refused.value)


def test_embeddings_deployments_on_cloud_providers_are_accepted() -> None:
    text = """
providers:
  - {id: oa, kind: openai, api_key_env: X}
  - {id: az, kind: azure, base_url: "https://acme.openai.azure.com", api_version: "2024-10-21",
     api_key_env: Y}
  - {id: gm, kind: gemini, api_key_env: Z}
models:
  - id: embed
    capabilities: [embeddings]
    deployments:
      - {provider: oa, upstream_id: text-embedding-3-small}
      - {provider: az, upstream_id: embed-small}
      - {provider: gm, upstream_id: gemini-embedding-001}
"""
    config = parse_config(text, "test.yaml")
    deployments = config.model_specs[0].deployments or []
    assert [d.provider for d in deployments] == ["oa", "az", "gm"]
