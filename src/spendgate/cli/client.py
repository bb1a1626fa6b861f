"""The CLI's HTTP client of the daemon's admin API (``<url>/api/v1``).

The CLI never opens the database: everything goes through the admin API, so authentication
and scoping always apply. Every failure becomes an ``AdminClientError`` whose text is one line
an operator can act on. httpx is imported on first use, keeping ``spendgate --help`` fast.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_URL",
    "AdminClient",
    "AdminClientError",
    "Remote",
    "client_from",
    "record_path",
]

DEFAULT_URL = "http://127.0.0.1:8787"
API_PREFIX = "/api/v1"


def record_path(collection: str, record_id: str, *action: str) -> str:
    """``/<collection>/<id>[/<action>]`` with the id percent-encoded (ids are free text)."""
    from urllib.parse import quote

    return "/".join((f"/{collection}", quote(record_id, safe=""), *action))


class AdminClientError(Exception):
    """str(e) is one clear line: daemon unreachable, auth refused, or the API's error."""


@dataclass(frozen=True)
class Remote:
    """The root callback's global options (``ctx.obj``)."""

    url: str = DEFAULT_URL
    token: str | None = None


def _one_line(text: str) -> str:
    return " ".join(text.split())


class AdminClient:
    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, *, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._client: httpx.Client | None = None

    # -- the calls ------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._json(self._send("GET", path, params=params))

    def post(self, path: str, json: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        return self._json(self._send("POST", path, params=params, json=json))

    def put(self, path: str, json: Any = None) -> Any:
        return self._json(self._send("PUT", path, json=json))

    def delete(self, path: str) -> Any:
        return self._json(self._send("DELETE", path))

    def get_text(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        return self._send("GET", path, params=params).text

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- plumbing -------------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx

            headers = {"user-agent": "spendgate-cli"}
            if self.token:
                headers["authorization"] = f"Bearer {self.token}"
            self._client = httpx.Client(
                base_url=self.url + API_PREFIX,
                headers=headers,
                timeout=httpx.Timeout(self.timeout, connect=5.0),
            )
        return self._client

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        import httpx

        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http().request(method, path, params=query, json=json)
        except httpx.InvalidURL as error:
            raise AdminClientError(f"invalid --url {self.url!r}: {_one_line(str(error))}") from None
        except httpx.TimeoutException:
            raise AdminClientError(
                f"spendgate at {self.url} did not answer within {self.timeout:g} s"
            ) from None
        except httpx.TransportError as error:
            reason = _one_line(str(error)) or type(error).__name__
            raise AdminClientError(
                f"cannot reach spendgate at {self.url}: {reason} — is `spendgate serve` or "
                "`spendgate demo` running?"
            ) from None
        if response.status_code >= 400:
            raise AdminClientError(self._describe(response))
        return response

    def _describe(self, response: httpx.Response) -> str:
        status = response.status_code
        message, param = _api_error(response)
        if status == 401:
            hint = (
                "pass --token or set SPENDGATE_ADMIN_TOKEN"
                if not self.token
                else "check --token / SPENDGATE_ADMIN_TOKEN"
            )
            return f"authentication refused by spendgate at {self.url}: {message} ({hint})"
        if message is None:
            if status == 404:
                return (
                    f"{self.url} has no admin API at {response.request.url.path} (HTTP 404) — "
                    "is --url pointing at a spendgate gateway?"
                )
            return f"spendgate at {self.url} answered HTTP {status}"
        prefix = "not allowed" if status == 403 else "error"
        suffix = f" (param: {param})" if param else ""
        return f"{prefix}: {message}{suffix} [HTTP {status}]"

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise AdminClientError(
                f"unexpected non-JSON answer from {response.request.url} "
                f"(HTTP {response.status_code})"
            ) from None


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _api_error(response: httpx.Response) -> tuple[str | None, str | None]:
    """The message and param of an error envelope, or (None, None) if it is not one."""
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return None, None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return None, None
    param = error.get("param")
    return _one_line(error["message"]), param if isinstance(param, str) else None


def client_from(ctx: typer.Context) -> AdminClient:
    """An admin client for the root callback's ``--url`` / ``--token``."""
    remote = ctx.find_root().obj
    if not isinstance(remote, Remote):
        remote = Remote()
    return AdminClient(remote.url, remote.token)
