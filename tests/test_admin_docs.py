"""The admin API's docs page (``/api/v1/docs``) over real HTTP and in a real browser: the page
and its files come from the gateway (no other origin, no credential needed), with a
Content-Security-Policy of this origin only; the OpenAPI document declares the bearer
credential on every operation, so Swagger UI's Authorize button sends it.

The browser test drives Debian's Chromium (``/usr/bin/chromium``) with Playwright, which never
downloads a browser of its own; it skips, saying why, where either is missing."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest

from admin_support import AdminGateway, admin_gateway
from browser_support import CHROMIUM, CHROMIUM_ARGS, guard
from spendgate.admin.docs import ASSETS, CONTENT_SECURITY_POLICY

TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("docs")) as running:
        yield running


class _Links(HTMLParser):
    """Every URL an HTML page makes the browser load or send to (src, href, action)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.openapi_url: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"src", "href", "action"} and value is not None:
                self.urls.append(value)
            if name == "data-openapi-url":
                self.openapi_url = value


def _page_links(gw: AdminGateway) -> tuple[httpx.Response, _Links]:
    page = gw.get("/docs", token=None)
    links = _Links()
    links.feed(page.text)
    return page, links


def test_docs_page_loads_only_its_own_files(gw: AdminGateway) -> None:
    page, links = _page_links(gw)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "<script>" not in page.text  # no inline script: the policy would refuse it
    assert links.openapi_url == "/api/v1/openapi.json"
    assert sorted(urlsplit(url).path for url in links.urls) == sorted(
        f"/api/v1/docs/static/{name}" for name in ASSETS
    )
    for url in links.urls:
        assert url.startswith("/api/v1/docs/static/")  # same origin: no scheme, no host
        asset = httpx.get(gw.url + url)  # no credential
        assert asset.status_code == 200, url
        suffix = url[url.rindex(".") : url.index("?")]
        assert asset.headers["content-type"] == TYPES.get(suffix, "image/png"), url
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert len(asset.content) > 100


def test_only_the_docs_files_are_public(gw: AdminGateway) -> None:
    response = gw.get("/docs/static/README.md", token=None)  # in the package, not an asset
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    escape = gw.get("/docs/static/..%2F..%2Fbudgets", token=None)  # the path decodes to ../
    assert escape.status_code == 404
    assert "principal-daily-usd" not in escape.text
    assert gw.get("/docs/budgets", token=None).status_code == 401


def test_openapi_declares_the_bearer_credential_on_every_operation(gw: AdminGateway) -> None:
    document = gw.get("/openapi.json", token=None).json()
    schemes = document["components"]["securitySchemes"]
    assert {k: v for k, v in schemes["bearer"].items() if k != "description"} == {
        "type": "http",
        "scheme": "bearer",
    }
    assert schemes["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "The same credential in the `x-api-key` header.",
    }
    operations = [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) >= 20
    for path, method, operation in operations:
        assert operation["security"] == [{"bearer": []}, {"apiKey": []}], (method, path)
    assert not any(path.startswith("/api/v1/docs") for path in document["paths"])


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")
def test_docs_page_in_a_browser_authorizes_and_tries_an_operation(gw: AdminGateway) -> None:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    document = gw.get("/openapi.json", token=None).json()
    listing = document["paths"]["/api/v1/budgets"]["get"]
    element_id = f"operations-{listing['tags'][0]}-{listing['operationId']}"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            watched = guard(page)
            page.goto(gw.api + "/docs")
            page.click("button.authorize")
            page.fill("#auth-bearer-value", gw.token)
            page.locator(".auth-container").first.locator("button[type=submit]").click()
            page.click("button.btn-done")
            operation = page.locator(f"#{element_id}")
            operation.locator(".opblock-summary").click()
            operation.locator("button.try-out__btn").click()
            operation.locator("button.execute").click()
            status = operation.locator(".live-responses-table .response .response-col_status")
            assert status.inner_text().strip() == "200"
            body = operation.locator(".live-responses-table .response-col_description pre")
            assert '"principal-daily-usd"' in body.first.inner_text()
            violations = page.evaluate("window.violations")
        finally:
            browser.close()
    assert not watched.refused
    assert not watched.errors
    assert violations == []
    assert (gw.api + "/budgets", f"Bearer {gw.token}") in watched.sent
    assert any(
        url.startswith(gw.api + "/docs/static/swagger-ui-bundle.js") for url, _ in watched.sent
    )
