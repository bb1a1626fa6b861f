"""The admin API's interactive docs: Swagger UI at ``/docs``, its files under ``/docs/static/``.

Everything the page loads comes from the gateway itself: Swagger UI is vendored in
``static/swagger-ui`` (its ``README.md`` names the package, version and integrity), and the
script that starts it is a file of its own (``static/docs.js``), so the page works offline and
its Content-Security-Policy allows this origin only. An asset's URL carries a digest of its
content (``?v=``): the files are cached for a year, the page is revalidated on every load.

The routes are outside the OpenAPI document and, like the document itself, public
(``gate``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from html import escape
from importlib.resources import files
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from spendgate.admin.errors import AdminError

__all__ = ["ASSETS", "CONTENT_SECURITY_POLICY", "router"]

# Asset name → (file under ``static/``, media type).
ASSETS: Final = {
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css; charset=utf-8"),
    "favicon-32x32.png": ("swagger-ui/favicon-32x32.png", "image/png"),
    "favicon-16x16.png": ("swagger-ui/favicon-16x16.png", "image/png"),
    "docs.js": ("docs.js", "text/javascript; charset=utf-8"),
}

# This origin only. Swagger UI's stylesheet draws icons as data: images; its inline styles are
# set from script (CSSOM), which style-src does not restrict: no 'unsafe-inline' is needed.
CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

_IMMUTABLE: Final = "public, max-age=31536000, immutable"

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class _Asset:
    body: bytes
    media_type: str
    version: str  # a digest of ``body``, for the URL


@cache
def _asset(name: str) -> _Asset:
    path, media_type = ASSETS[name]
    body = files("spendgate.admin").joinpath("static", *path.split("/")).read_bytes()
    return _Asset(body, media_type, hashlib.sha256(body).hexdigest()[:16])


@router.get("/docs")
def docs_page(request: Request) -> HTMLResponse:
    def url(name: str) -> str:
        path = request.url_for("docs_asset", name=name).path
        return escape(f"{path}?v={_asset(name).version}")

    openapi_url = escape(request.scope.get("root_path", "") + request.app.openapi_url)
    title = escape(request.app.title)
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" sizes="32x32" href="{url("favicon-32x32.png")}">
<link rel="icon" type="image/png" sizes="16x16" href="{url("favicon-16x16.png")}">
<link rel="stylesheet" href="{url("swagger-ui.css")}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="{url("swagger-ui-bundle.js")}"></script>
<script src="{url("docs.js")}"></script>
</body>
</html>
"""
    headers = {
        "content-security-policy": CONTENT_SECURITY_POLICY,
        "cache-control": "no-cache",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    }
    return HTMLResponse(page, headers=headers)


@router.get("/docs/static/{name}")
def docs_asset(name: str) -> Response:
    if name not in ASSETS:
        raise AdminError(404, "not_found", f"No docs asset named {name!r}.")
    asset = _asset(name)
    headers = {"cache-control": _IMMUTABLE, "x-content-type-options": "nosniff"}
    return Response(asset.body, media_type=asset.media_type, headers=headers)
