"""The ``providers`` and ``models`` sections: the upstreams and the models they serve.

Secrets are never in the file: a provider names the environment variable holding its key.
A model is served by one provider (``provider`` / ``upstream_id``) or by several
(``deployments``), never both.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, StrictBool, StrictStr, model_validator

from spendgate.config.errors import invalid
from spendgate.config.values import EnvName, Id, PositiveInt, PositiveSeconds, Spec, Url
from spendgate.domain.models import Capability, ProviderKind, Tier

# Azure OpenAI's data-plane versions: a date, or a preview of one ("2025-04-01-preview").
_AZURE_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


def _date_as_text(value: object) -> object:
    # YAML reads an unquoted 2024-10-21 as a date: it is the version all the same.
    return value.isoformat() if isinstance(value, date) else value


class ProviderSpec(Spec):
    id: Id
    kind: ProviderKind
    base_url: Url | None = None
    api_key_env: EnvName | None = None
    max_concurrency: PositiveInt = 64
    timeout_s: PositiveSeconds = 60.0
    # azure only: the api-version query parameter
    api_version: Annotated[StrictStr | None, BeforeValidator(_date_as_text)] = None

    @model_validator(mode="after")
    def _azure(self) -> ProviderSpec:
        if self.kind is not ProviderKind.AZURE:
            if self.api_version is not None:
                raise invalid(
                    f"api_version applies to kind azure only (this provider is {self.kind.value})",
                    ("api_version",),
                )
            return self
        if self.base_url is None:
            raise invalid(
                "an azure provider needs base_url, its resource's endpoint "
                "(https://<resource>.openai.azure.com)",
                ("base_url",),
            )
        if urlsplit(self.base_url).path.rstrip("/"):
            raise invalid(
                f"base_url is the resource's endpoint without a path "
                f"(https://<resource>.openai.azure.com), got {self.base_url!r}: spendgate "
                "adds /openai/deployments/<upstream_id>/… itself",
                ("base_url",),
            )
        if self.api_version is None:
            raise invalid(
                "an azure provider needs api_version, e.g. 2024-10-21 (Azure refuses calls "
                "without one)",
                ("api_version",),
            )
        if not _AZURE_API_VERSION.match(self.api_version):
            raise invalid(
                f"api_version must be a date such as 2024-10-21, optionally with -preview "
                f"(2025-04-01-preview); got {self.api_version!r}",
                ("api_version",),
            )
        return self


class DeploymentSpec(Spec):
    provider: Id
    upstream_id: Id | None = None  # None: the model's id (an Azure deployment name, …)
    weight: PositiveInt = 1


class ModelSpec(Spec):
    id: Id
    provider: Id | None = None
    upstream_id: Id | None = None
    deployments: list[DeploymentSpec] | None = None
    capabilities: list[Capability] = Field(default_factory=list)
    context_window: PositiveInt | None = None
    max_output_tokens: PositiveInt | None = None
    cost_tier: Tier | None = None  # None: derived from the model's price
    latency_tier: Tier = Tier.MEDIUM
    enabled: StrictBool = True

    @model_validator(mode="after")
    def _served(self) -> ModelSpec:
        if self.deployments is None:
            if self.provider is None:
                raise invalid(
                    "a model needs a provider, or deployments: [{provider, upstream_id, "
                    "weight}] to serve it on several",
                    ("provider",),
                )
            return self
        if self.provider is not None or self.upstream_id is not None:
            field = "provider" if self.provider is not None else "upstream_id"
            raise invalid(
                f"give either provider / upstream_id (one deployment) or deployments, not "
                f"both: move {field} into an entry of deployments",
                (field,),
            )
        if not self.deployments:
            raise invalid("deployments needs at least one entry", ("deployments",))
        seen: dict[str, int] = {}
        for index, deployment in enumerate(self.deployments):
            if deployment.provider in seen:
                raise invalid(
                    f"provider {deployment.provider!r} is also deployments"
                    f"[{seen[deployment.provider]}]; a model has one deployment per provider",
                    ("deployments", index, "provider"),
                )
            seen[deployment.provider] = index
        return self

    def upstream_ids(self) -> list[str]:
        """The ids the model's deployments know it by (its own id where none is given)."""
        if self.deployments is None:
            return [self.upstream_id or self.id]
        return [d.upstream_id or self.id for d in self.deployments]
