"""Capabilities a model's provider must be able to serve: an ``embeddings`` model needs a
provider with an embeddings API (``openai``, ``azure``, ``gemini``, ``mock``): on every one of
its deployments. Anthropic has none."""

from __future__ import annotations

from collections.abc import Mapping

from spendgate.config.errors import Loc
from spendgate.domain.models import Capability, ProviderKind

__all__ = ["capability_problems"]

_NO_EMBEDDINGS = frozenset({ProviderKind.ANTHROPIC.value})


def capability_problems(data: Mapping[str, object]) -> list[tuple[Loc, str]]:
    """Each deployment of an ``embeddings`` model on a provider whose kind has no embeddings
    API."""
    providers = data.get("providers")
    models = data.get("models")
    if not isinstance(providers, list) or not isinstance(models, list):
        return []
    kinds = {item.get("id"): item.get("kind") for item in providers if isinstance(item, dict)}
    found: list[tuple[Loc, str]] = []
    for index, model in enumerate(models):
        if not isinstance(model, dict):
            continue
        capabilities = model.get("capabilities")
        if not isinstance(capabilities, list) or Capability.EMBEDDINGS.value not in capabilities:
            continue
        for provider in _providers_of(model):
            kind = kinds.get(provider)
            if kind in _NO_EMBEDDINGS:
                found.append(
                    (
                        ("models", index, "capabilities"),
                        f"{model.get('id')!r} is an embeddings model, but its provider "
                        f"{provider!r} is of kind {kind}, which has no embeddings API: serve "
                        "it from a provider of kind openai, azure, gemini or mock",
                    )
                )
    return found


def _providers_of(model: Mapping[str, object]) -> list[object]:
    """The providers a model's deployments name (the ``provider`` key is one deployment)."""
    deployments = model.get("deployments")
    if isinstance(deployments, list):
        return [item.get("provider") for item in deployments if isinstance(item, dict)]
    return [model.get("provider")]
