"""Azure OpenAI upstreams: the model is an Azure *deployment*, named in the URL path.

``POST {base_url}/openai/deployments/{upstream_id}/chat/completions?api-version=…`` with the
key in an ``api-key`` header (not ``Authorization: Bearer``). The request body is OpenAI's
(its ``model`` field is ignored by Azure; it is sent as the deployment name anyway).
"""

from __future__ import annotations

from urllib.parse import quote

from spendgate.domain.requests import Protocol
from spendgate.providers.base import HttpUpstream, UpstreamCall

__all__ = ["AzureUpstream"]

# The path of each protocol under the resource's endpoint; ``{deployment}`` is the model's
# upstream id. The Responses API names the deployment in the body's ``model`` instead.
_PATHS: dict[Protocol, str] = {
    Protocol.OPENAI: "/openai/deployments/{deployment}/chat/completions",
    Protocol.EMBEDDINGS: "/openai/deployments/{deployment}/embeddings",
    Protocol.COMPLETIONS: "/openai/deployments/{deployment}/completions",
    Protocol.RESPONSES: "/openai/responses",
}


class AzureUpstream(HttpUpstream):
    protocols = frozenset(_PATHS)

    def call_url(self, call: UpstreamCall) -> str:
        model = call.body.get("model") if call.body is not None else None
        if not isinstance(model, str) or not model:
            raise ValueError(f"provider {self.provider.id} (azure): the call names no deployment")
        base = (self.provider.base_url or "").rstrip("/")
        path = _PATHS[call.protocol].format(deployment=quote(model, safe=""))
        return f"{base}{path}?api-version={quote(self.provider.api_version or '', safe='')}"

    def auth_headers(self, credential: str | None) -> dict[str, str]:
        return {"api-key": credential} if credential else {}
