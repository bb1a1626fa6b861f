"""The URL and auth shapes of two hosted OpenAI-compatible APIs, in front of the OpenAI chat
API the mock speaks, so a gateway's calls to them can be tested for real:

- Azure OpenAI: ``POST /openai/deployments/{deployment}/chat/completions?api-version=…``
  with an ``api-key`` header. As Azure does, a missing ``api-version`` is a 404 and a
  missing or wrong key a 401, in Azure's own error envelope (``code`` is the status string).
- Google Gemini: ``POST /v1beta/openai/chat/completions`` with ``Authorization: Bearer``.
  As Gemini does, a wrong key is a 400 ``INVALID_ARGUMENT`` wrapped in a list.

A key is "wrong" only when the mock was given one to expect (``MockOptions.api_key``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

__all__ = ["Cloud", "CloudCall", "match"]

_AZURE_PATH = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")
_GEMINI_PATH = "/v1beta/openai/chat/completions"
_JSON = {"Content-Type": "application/json"}


class Cloud(Enum):
    AZURE = "azure"
    GEMINI = "gemini"


@dataclass(frozen=True, slots=True)
class CloudCall:
    """A chat call that came in one cloud's shape."""

    cloud: Cloud
    deployment: str | None  # Azure's, from the path

    def credential(self, headers: CIMultiDictProxy[str]) -> str | None:
        """The key, where this cloud reads it (Azure: ``api-key``; Gemini: Bearer)."""
        if self.cloud is Cloud.AZURE:
            return headers.get("api-key") or None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return (token.strip() or None) if scheme.lower() == "bearer" else None

    def refusal(
        self, request: web.BaseRequest, credential: str | None, expected: str | None
    ) -> web.Response | None:
        """The cloud's own error for a call it refuses before reading it, else None."""
        wrong = credential is None or (expected is not None and credential != expected)
        if self.cloud is Cloud.AZURE:
            if not request.query.get("api-version"):
                return _azure(404, "Resource not found")
            if credential is None:
                return _azure(
                    401,
                    "Access denied due to missing subscription key. Make sure to include "
                    "subscription key when making requests to an API.",
                )
            if wrong:
                return _azure(
                    401,
                    "Access denied due to invalid subscription key or wrong API endpoint. Make "
                    "sure to provide a valid key for an active subscription and use a correct "
                    "regional API endpoint for your resource.",
                )
            return None
        if wrong:
            body = [
                {
                    "error": {
                        "code": 400,
                        "message": "API key not valid. Please pass a valid API key.",
                        "status": "INVALID_ARGUMENT",
                    }
                }
            ]
            return web.Response(status=400, body=orjson.dumps(body), headers=_JSON)
        return None

    def body(self, body: Any) -> Any:
        """Azure names the model by its deployment: the body's ``model`` is not needed."""
        if self.cloud is Cloud.AZURE and isinstance(body, dict):
            return {**body, "model": self.deployment}
        return body


def match(path: str) -> CloudCall | None:
    """The cloud a chat call's path belongs to, if any."""
    if path == _GEMINI_PATH:
        return CloudCall(Cloud.GEMINI, None)
    found = _AZURE_PATH.match(path)
    return CloudCall(Cloud.AZURE, found.group(1)) if found else None


def _azure(status: int, message: str) -> web.Response:
    body = {"error": {"code": str(status), "message": message}}
    return web.Response(status=status, body=orjson.dumps(body), headers=_JSON)
