"""Config of deployments and of the azure / gemini provider kinds (issue 14): the old
one-provider form still works as one deployment; every mistake gets one clear line naming
the key and what to do."""

from __future__ import annotations

import pytest

from spendgate.config import ConfigError, parse_config
from spendgate.domain.models import Deployment, ProviderKind

PROVIDERS = """
providers:
  - {id: east, kind: openai, api_key_env: EAST_KEY}
  - {id: west, kind: openai, api_key_env: WEST_KEY}
  - {id: az, kind: azure, base_url: "https://acme.openai.azure.com", api_version: "2024-10-21",
     api_key_env: AZURE_KEY}
  - {id: gem, kind: gemini, api_key_env: GEMINI_KEY}
"""


def _models(config_text: str) -> dict[str, tuple[Deployment, ...]]:
    config = parse_config(config_text, "f.yaml")
    return {m.id: m.deployments for m in config.models(config.price_book())}


def test_deployments_and_the_old_form_both_become_deployments() -> None:
    found = _models(
        PROVIDERS
        + """
models:
  - {id: gpt-4o-mini, provider: east}
  - id: gpt-4o
    deployments:
      - {provider: az, upstream_id: gpt4o-prod, weight: 3}
      - {provider: east}
  - {id: flash, deployments: [{provider: gem, upstream_id: gemini-2.0-flash}]}
"""
    )
    assert found == {
        "gpt-4o-mini": (Deployment("east", "gpt-4o-mini", 1),),
        "gpt-4o": (Deployment("az", "gpt4o-prod", 3), Deployment("east", "gpt-4o", 1)),
        "flash": (Deployment("gem", "gemini-2.0-flash", 1),),
    }


def test_a_model_is_priced_through_any_deployments_upstream_id() -> None:
    """An Azure deployment name is in no price catalog; the vendor's model name of another
    deployment is."""
    config = parse_config(
        PROVIDERS
        + """
models:
  - id: smart
    deployments: [{provider: az, upstream_id: my-prod-deployment}, {provider: east,
                  upstream_id: gpt-4o}]
""",
        "f.yaml",
    )
    from spendgate.catalog import load_catalog

    book = config.price_book(load_catalog())
    assert book.rows("smart")  # gpt-4o's catalog prices, under the routed id


def test_azure_provider_is_converted_with_its_api_version() -> None:
    config = parse_config(PROVIDERS + "models: [{id: m, provider: az}]\n", "f.yaml")
    azure = next(p for p in config.providers() if p.id == "az")
    assert azure.kind is ProviderKind.AZURE
    assert azure.api_version == "2024-10-21"


BAD = [
    (
        "both forms",
        "models: [{id: m, provider: east, deployments: [{provider: west}]}]",
        "models[0] (m).provider: give either provider / upstream_id (one deployment) or "
        "deployments, not both",
    ),
    (
        "upstream_id beside deployments",
        "models: [{id: m, upstream_id: x, deployments: [{provider: west}]}]",
        "models[0] (m).upstream_id: give either provider / upstream_id",
    ),
    (
        "neither form",
        "models: [{id: m}]",
        "models[0] (m).provider: a model needs a provider, or deployments",
    ),
    (
        "no deployment",
        "models: [{id: m, deployments: []}]",
        "models[0] (m).deployments: deployments needs at least one entry",
    ),
    (
        "zero weight",
        "models: [{id: m, deployments: [{provider: east, weight: 0}]}]",
        "models[0] (m).deployments[0].weight: must be greater than 0",
    ),
    (
        "unknown deployment provider",
        "models: [{id: m, deployments: [{provider: east}, {provider: wset}]}]",
        "models[0] (m).deployments[1].provider: unknown provider 'wset' (did you mean 'west'?); "
        "configured providers: east, west, az, gem",
    ),
    (
        "one provider twice",
        "models: [{id: m, deployments: [{provider: east}, {provider: east, weight: 2}]}]",
        "models[0] (m).deployments[1].provider: provider 'east' is also deployments[0]",
    ),
]


@pytest.mark.parametrize(("case", "models", "line"), BAD, ids=[case[0] for case in BAD])
def test_bad_deployments_are_reported_clearly(case: str, models: str, line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(PROVIDERS + models + "\n", "f.yaml")
    assert any(line in problem for problem in caught.value.lines), caught.value.lines


BAD_PROVIDERS = [
    (
        "azure without api_version",
        '{id: az, kind: azure, base_url: "https://acme.openai.azure.com"}',
        "providers[0] (az).api_version: an azure provider needs api_version, e.g. 2024-10-21",
    ),
    (
        "azure api_version not a date",
        '{id: az, kind: azure, base_url: "https://acme.openai.azure.com", api_version: v1}',
        "providers[0] (az).api_version: api_version must be a date such as 2024-10-21",
    ),
    (
        "azure without base_url",
        "{id: az, kind: azure, api_version: 2024-10-21}",
        "providers[0] (az).base_url: an azure provider needs base_url",
    ),
    (
        "azure base_url with a path",
        '{id: az, kind: azure, base_url: "https://acme.openai.azure.com/openai/deployments/x",'
        " api_version: 2024-10-21}",
        "providers[0] (az).base_url: base_url is the resource's endpoint without a path",
    ),
    (
        "api_version on another kind",
        "{id: oa, kind: openai, api_version: 2024-10-21}",
        "providers[0] (oa).api_version: api_version applies to kind azure only",
    ),
]


@pytest.mark.parametrize(
    ("case", "provider", "line"), BAD_PROVIDERS, ids=[case[0] for case in BAD_PROVIDERS]
)
def test_bad_azure_providers_are_reported_clearly(case: str, provider: str, line: str) -> None:
    text = f"providers:\n  - {provider}\nmodels: [{{id: m, provider: {provider[5:7]}}}]\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "f.yaml")
    assert any(line in problem for problem in caught.value.lines), caught.value.lines
