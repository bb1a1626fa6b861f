"""Debian's Chromium driven by Playwright (which never downloads a browser of its own) for the
browser tests: a page that lets no request leave the loopback and records every
Content-Security-Policy violation and script error."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "Guard", "guard"]

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
_VIOLATIONS = (
    "window.violations = [];"
    "document.addEventListener('securitypolicyviolation', e =>"
    " window.violations.push(e.violatedDirective + ' ' + e.blockedURI));"
)


@dataclass
class Guard:
    sent: list[tuple[str, str | None]] = field(default_factory=list)  # url, authorization
    refused: list[str] = field(default_factory=list)  # not for the loopback: never sent
    errors: list[str] = field(default_factory=list)  # uncaught script errors

    def route(self, route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname != "127.0.0.1":
            self.refused.append(url)
            route.abort()
            return
        self.sent.append((url, route.request.headers.get("authorization")))
        route.continue_()


def guard(page: Any) -> Guard:
    """Watch ``page``: requests only to 127.0.0.1, errors and CSP violations recorded
    (``page.evaluate("window.violations")`` reads the latter)."""
    watched = Guard()
    page.set_default_timeout(30_000)
    page.route("**/*", watched.route)
    page.on("pageerror", lambda error: watched.errors.append(str(error)))
    page.add_init_script(_VIOLATIONS)
    return watched
