"""The web console's ASGI app, served under ``/console`` (built on its first request).

Server-rendered pages (Jinja2) with htmx for live refresh and uPlot for charts, both vendored
(``static/vendor``). Every page reads through the admin API's services with the signed-in
viewer, so scoping and numbers are the API's own. Responses carry a strict
Content-Security-Policy: scripts and styles only from this origin, no inline script, no
request to any other host.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from importlib.resources import files
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from spendgate.admin.context import AdminContext
from spendgate.console import pages
from spendgate.console.filters import Filters
from spendgate.console.sessions import COOKIE, Session, SessionSigner, csrf_matches
from spendgate.console.web import PREFIX, FormTooLargeError, read_form, secured, url

__all__ = ["PREFIX", "create_console_app"]

_STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
NAV = [
    ("/", "Usage"),
    ("/insights", "Insights"),
    ("/budgets", "Budgets"),
    ("/approvals", "Approvals"),
    ("/alerts", "Alerts"),
    ("/models", "Models"),
]

Handler = Callable[["Console", Request, Session], Awaitable[Response]]


class Console:
    """What every page handler gets: the admin context, templates and the session signer."""

    def __init__(self, ctx: AdminContext, environ: Mapping[str, str]) -> None:
        self.ctx = ctx
        self.signer = SessionSigner(ctx, environ)
        self.templates = Environment(
            loader=PackageLoader("spendgate.console", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals.update(url=url, static=lambda path: f"{PREFIX}/static/{path}")

    def page(self, template: str, session: Session, request: Request, **values: Any) -> Response:
        viewer = session.viewer
        who = "admin token" if viewer.key is None else f"key {viewer.key.id}"
        html = self.templates.get_template(template).render(
            csrf=session.csrf,
            nav=NAV,
            who=who,
            query_string=_shared_query(request),
            **values,
        )
        return secured(HTMLResponse(html))


def _shared_query(request: Request) -> str:
    """The filter bar's part of the URL, carried from page to page."""
    return Filters.parse(request.query_params).query()


def _signed_in(handler: Handler, console: Console, *, writes: bool) -> Callable[..., Any]:
    """The handler, behind the session cookie (and, for a POST, the CSRF token)."""

    async def endpoint(request: Request) -> Response:
        session = console.signer.session(request.cookies.get(COOKIE))
        if session is None:
            if writes:
                return secured(Response("Signed out: sign in again.", status_code=401))
            return secured(RedirectResponse(url("/login"), status_code=303))
        if writes:
            refused = await _check_form(request, session)
            if refused is not None:
                return refused
        return await handler(console, request, session)

    return endpoint


async def _check_form(request: Request, session: Session) -> Response | None:
    """Read the form (kept in ``request.state.form`` for the handler) and check its token."""
    try:
        form = await read_form(request)
    except FormTooLargeError:
        return secured(Response("The form is too large.", status_code=413))
    request.state.form = form
    token = form.get("csrf") or request.headers.get("x-csrf-token")
    if token is None or not csrf_matches(session, token):
        return secured(Response("Missing or wrong CSRF token.", status_code=403))
    return None


async def _static(request: Request) -> Response:
    path = request.path_params["path"]
    parts = path.split("/")
    suffix = "." + path.rsplit(".", 1)[-1] if "." in path else ""
    if any(part in ("", ".", "..") for part in parts) or suffix not in _STATIC_TYPES:
        return secured(Response("Not found.", status_code=404))
    resource = files("spendgate.console").joinpath("static", *parts)
    if not resource.is_file():
        return secured(Response("Not found.", status_code=404))
    response = Response(resource.read_bytes(), media_type=_STATIC_TYPES[suffix])
    response.headers["cache-control"] = "public, max-age=3600"
    return secured(response)


def create_console_app(ctx: AdminContext, environ: Mapping[str, str]) -> Starlette:
    console = Console(ctx, environ)

    async def login_form(request: Request) -> Response:
        return pages.login_form(console, request)

    async def login(request: Request) -> Response:
        return await pages.login(console, request)

    async def root(request: Request) -> Response:
        return RedirectResponse(url("/"), status_code=307)

    reads = [
        ("/", pages.usage),
        ("/export", pages.export),
        ("/insights", pages.insights),
        ("/insights/{decision_id}", pages.decision),
        ("/budgets", pages.budgets),
        ("/approvals", pages.approvals),
        ("/alerts", pages.alerts),
        ("/models", pages.models),
    ]
    writes = [
        ("/logout", pages.logout),
        ("/approvals/{approval_id}/approve", pages.approve),
        ("/approvals/{approval_id}/deny", pages.deny),
        ("/alerts/{alert_id}/ack", pages.acknowledge),
        ("/models/test", pages.test_connections),
        ("/budgets/{budget_id}/override", pages.request_override),
        ("/budgets", pages.create_budget),
        ("/budgets/{budget_id}/limits", pages.change_budget),
        ("/budgets/{budget_id}/enabled", pages.switch_budget),
    ]
    routes = [
        Route(PREFIX, root),
        Route(url("/login"), login_form, methods=["GET"]),
        Route(url("/login"), login, methods=["POST"]),
        Route(url("/static/{path:path}"), _static),
        *(Route(url(path), _signed_in(h, console, writes=False)) for path, h in reads),
        *(
            Route(url(path), _signed_in(h, console, writes=True), methods=["POST"])
            for path, h in writes
        ),
    ]
    return Starlette(routes=routes)
