"""The console's pages: each reads through the admin API's services as the signed-in viewer
and renders a template. State changes are plain forms (POST, CSRF token) answered with a
redirect back to the page, so a reload never repeats them."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from spendgate.admin.approvals import caller_of
from spendgate.admin.budgets import list_budgets
from spendgate.admin.decisions import get_decision, list_decisions
from spendgate.admin.errors import AdminError
from spendgate.admin.models import check_connections, list_models, models_status
from spendgate.admin.usage import EXPORT_MAX_ROWS, usage_export
from spendgate.console.burn_down import burn_down
from spendgate.console.filters import WINDOWS, Filters
from spendgate.console.sessions import COOKIE, LIFETIME_S, Session
from spendgate.console.usage_view import usage_query, usage_view
from spendgate.console.web import FormTooLargeError, read_form, secured, url
from spendgate.domain.approvals import ApprovalScope, ApprovalState
from spendgate.domain.routing import RoutingAction
from spendgate.records.errors import RecordError
from spendgate.store.records import AlertState

if TYPE_CHECKING:
    from spendgate.console.app import Console

__all__ = [
    "acknowledge",
    "alerts",
    "approvals",
    "approve",
    "budgets",
    "change_budget",
    "create_budget",
    "decision",
    "deny",
    "export",
    "insights",
    "login",
    "login_form",
    "logout",
    "models",
    "request_override",
    "switch_budget",
    "test_connections",
    "usage",
]

_LOGIN_COOKIE = "spendgate_console_login"  # the sign-in form's own CSRF token


def _cookie_options(request: Request) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
        "path": url(""),
    }


# -- signing in ------------------------------------------------------------------------------


def login_form(console: Console, request: Request, error: str | None = None) -> Response:
    token = secrets.token_urlsafe(24)
    html = console.templates.get_template("login.html").render(csrf=token, error=error)
    response = secured(HTMLResponse(html, status_code=401 if error else 200))
    response.set_cookie(_LOGIN_COOKIE, token, max_age=3600, **_cookie_options(request))
    return response


async def login(console: Console, request: Request) -> Response:
    try:
        form = await read_form(request)
    except FormTooLargeError:
        return secured(Response("The form is too large.", status_code=413))
    expected = request.cookies.get(_LOGIN_COOKIE, "")
    token = form.get("csrf", "")
    if not expected or not hmac.compare_digest(expected, token):
        return secured(Response("Missing or wrong CSRF token.", status_code=403))
    credential = form.get("credential", "")
    signed = console.signer.sign_in(credential) if credential else None
    if signed is None:
        return login_form(console, request, "That is not a valid admin token or API key.")
    cookie, _session = signed
    response = secured(RedirectResponse(url("/"), status_code=303))
    response.set_cookie(COOKIE, cookie, max_age=LIFETIME_S, **_cookie_options(request))
    response.delete_cookie(_LOGIN_COOKIE, path=url(""))
    return response


async def logout(console: Console, request: Request, session: Session) -> Response:
    response = secured(RedirectResponse(url("/login"), status_code=303))
    response.delete_cookie(COOKIE, path=url(""))
    return response


# -- reading ---------------------------------------------------------------------------------


async def usage(console: Console, request: Request, session: Session) -> Response:
    filters = Filters.parse(request.query_params).confined(session.viewer)
    view = usage_view(console.ctx, session.viewer, filters, caller_of(session.viewer))
    return console.page(
        "usage.html",
        session,
        request,
        title="Usage",
        active="/",
        view=view,
        windows=list(WINDOWS),
        chart_json=orjson.dumps(view.chart).decode(),
        admin=session.viewer.is_admin,
    )


async def export(console: Console, request: Request, session: Session) -> Response:
    """The decisions behind what the Usage page shows (same filters), as CSV or JSON: the
    admin API's export, confined to the viewer."""
    filters = Filters.parse(request.query_params).confined(session.viewer)
    query = usage_query(filters, session.viewer)
    if request.query_params.get("format") == "json":
        return secured(usage_export(console.ctx, query, "json", EXPORT_MAX_ROWS, None))
    return secured(usage_export(console.ctx, query, "csv", EXPORT_MAX_ROWS, None))


async def insights(console: Console, request: Request, session: Session) -> Response:
    filters = Filters.parse(request.query_params).confined(session.viewer)
    action_name = request.query_params.get("action") or None
    action = RoutingAction(action_name) if action_name in _ACTIONS else None
    listed = list_decisions(
        console.ctx,
        session.viewer,
        project=filters.project,
        principal=filters.principal,
        model=filters.model,
        action=action,
        limit=100,
    )
    return console.page(
        "insights.html",
        session,
        request,
        title="Insights",
        active="/insights",
        decisions=listed.data,
        actions=sorted(_ACTIONS),
        action=action.value if action else "",
        filters=filters,
    )


_ACTIONS = {action.value for action in RoutingAction}


async def decision(console: Console, request: Request, session: Session) -> Response:
    decision_id = request.path_params["decision_id"]
    try:
        detail = get_decision(console.ctx, session.viewer, decision_id)
    except AdminError as error:
        return _problem(console, request, session, error.status, error.message)
    return console.page(
        "decision.html", session, request, title=f"Decision {decision_id}",
        active="/insights", d=detail,
    )  # fmt: skip


async def budgets(console: Console, request: Request, session: Session) -> Response:
    listed = list_budgets(console.ctx, session.viewer)
    asks = {
        view.id for view in listed.data if view.hard_action == "require_approval"
    } if session.viewer.key is not None else set()  # fmt: skip
    charts = {
        (view.id, use.member): chart
        for view in listed.data
        for use in view.consumption[:BURN_DOWNS_PER_BUDGET]
        if (chart := burn_down(console.ctx, view, use)) is not None
    }
    return console.page(
        "budgets.html", session, request, title="Budgets", active="/budgets",
        budgets=listed.data, may_ask=asks, error=request.query_params.get("error"),
        notice=request.query_params.get("notice"), admin=session.viewer.is_admin,
        metrics=_METRICS, intervals=_INTERVALS,
        charts={key: orjson.dumps(chart).decode() for key, chart in charts.items()},
        forecasts={key: chart["exhausted_at_text"] for key, chart in charts.items()},
    )  # fmt: skip


# Members drawn per budget (each is one usage query); the rest show their meter only.
BURN_DOWNS_PER_BUDGET = 3


async def approvals(console: Console, request: Request, session: Session) -> Response:
    caller = caller_of(session.viewer)
    records = console.ctx.records.approvals
    pending = records.find(caller, state=ApprovalState.PENDING, limit=200)
    history = [a for a in records.find(caller, limit=100) if a.state is not ApprovalState.PENDING]
    # The heading polls with the queue's digest as this page showed it, and says when the
    # queue changed (not swapping the table under an approver typing a reason).
    queue = hashlib.sha256(",".join(sorted(a.id for a in pending)).encode()).hexdigest()[:16]
    seen = request.query_params.get("seen") or queue
    return console.page(
        "approvals.html", session, request, title="Approvals", active="/approvals",
        seen=seen, queue_changed=seen != queue,
        pending=pending, history=history, error=request.query_params.get("error"),
        notice=request.query_params.get("notice"),
        may_decide={a.id: caller.may_decide(a) and a.requester != caller.requester
                    for a in pending},
        time_left={a.id: _time_left(a.expires_at) for a in pending},
    )  # fmt: skip


async def alerts(console: Console, request: Request, session: Session) -> Response:
    caller = caller_of(session.viewer)
    records = console.ctx.records.alerts
    state_name = request.query_params.get("state") or None
    state = AlertState(state_name) if state_name in {s.value for s in AlertState} else None
    found = records.find(caller, state=state, limit=200)
    deliveries = records.deliveries(found)
    return console.page(
        "alerts.html", session, request, title="Alerts", active="/alerts", alerts=found,
        deliveries=deliveries, state=state.value if state else "",
        error=request.query_params.get("error"),
    )  # fmt: skip


async def models(console: Console, request: Request, session: Session) -> Response:
    return _models_page(console, request, session)


def _models_page(
    console: Console, request: Request, session: Session, tests: Any = None
) -> Response:
    status = models_status(console.ctx, session.viewer)
    listed = list_models(request, console.ctx, session.viewer)
    return console.page(
        "models.html", session, request, title="Models", active="/models",
        status=status, models=listed.data, tests=tests, admin=session.viewer.is_admin,
    )  # fmt: skip


async def test_connections(console: Console, request: Request, session: Session) -> Response:
    """Each provider's reachability, credential and models, probed now (admins only, as in
    the API: it calls the providers)."""
    if not session.viewer.is_admin:
        return _problem(console, request, session, 403, "Testing connections is for admins.")
    tests = await check_connections(console.ctx, session.viewer)
    return _models_page(console, request, session, tests)


async def request_override(console: Console, request: Request, session: Session) -> Response:
    """Ask ahead for an override of a budget that applies to the signed-in key."""
    form: dict[str, str] = request.state.form
    reason = form.get("reason", "").strip()
    if not reason:
        return _back("/budgets", "Say why the override is needed.")
    try:
        amount = Decimal(form["amount"]) if form.get("amount") else None
        approval, _created = console.ctx.records.approvals.request(
            caller_of(session.viewer), request.path_params["budget_id"], reason[:2000],
            amount=amount,
        )  # fmt: skip
    except InvalidOperation:
        return _back("/budgets", "The amount is not a number.")
    except RecordError as error:
        return _back("/budgets", error.message)
    return _back("/approvals", notice=f"Override requested: {approval.id}")


def _problem(
    console: Console, request: Request, session: Session, status: int, message: str
) -> Response:
    response = console.page(
        "problem.html", session, request, title="Not found", active="", message=message
    )
    response.status_code = status
    return response


# -- deciding --------------------------------------------------------------------------------


async def approve(console: Console, request: Request, session: Session) -> Response:
    form: dict[str, str] = request.state.form
    scope_name = form.get("scope") or "once"
    if scope_name not in {s.value for s in ApprovalScope}:
        return _back("/approvals", "Choose once, session or until.")
    until = form.get("until") or None
    amount = form.get("amount") or None
    try:
        when = _utc(datetime.fromisoformat(until)) if until else None
        extra = Decimal(amount) if amount else None
        console.ctx.records.approvals.approve(
            caller_of(session.viewer), request.path_params["approval_id"],
            ApprovalScope(scope_name), until=when, amount=extra,
            note=form.get("note") or None,
        )  # fmt: skip
    except (ValueError, InvalidOperation):
        return _back("/approvals", "The time or the amount is not valid.")
    except RecordError as error:
        return _back("/approvals", error.message)
    return _back("/approvals")


async def deny(console: Console, request: Request, session: Session) -> Response:
    form: dict[str, str] = request.state.form
    reason = form.get("reason", "").strip()
    if not reason:
        return _back("/approvals", "Say why it is denied.")
    try:
        console.ctx.records.approvals.deny(
            caller_of(session.viewer), request.path_params["approval_id"], reason[:2000]
        )
    except RecordError as error:
        return _back("/approvals", error.message)
    return _back("/approvals")


async def acknowledge(console: Console, request: Request, session: Session) -> Response:
    try:
        console.ctx.records.alerts.acknowledge(
            caller_of(session.viewer), request.path_params["alert_id"]
        )
    except RecordError as error:
        return _back("/alerts", error.message)
    return _back("/alerts")


def _back(path: str, error: str | None = None, *, notice: str | None = None) -> Response:
    said = {"error": error} if error else {"notice": notice} if notice else {}
    target = url(path) + (f"?{urlencode(said)}" if said else "")
    return secured(RedirectResponse(target, status_code=303))


# -- budgets (admins) ------------------------------------------------------------------------

_METRICS = ("usd", "tokens", "requests")
_INTERVALS = ("hourly", "daily", "weekly", "monthly")


def _budget_document(form: dict[str, str]) -> dict[str, Any]:
    """A budget as the YAML file and the admin API spell it, from the console's form (only
    the fields filled in; validation is the records', with the config's messages)."""
    interval: Any = form.get("interval", "daily")
    if interval == "rolling":
        interval = {"kind": "rolling", "duration": form.get("duration", "")}
    elif form.get("timezone"):
        interval = {"kind": interval, "timezone": form["timezone"]}
    document: dict[str, Any] = {
        "id": form.get("id", "").strip(),
        "scope": {"kind": form.get("scope_kind", ""), "id": form.get("scope_id", "").strip()},
        "metric": form.get("metric", ""),
        "interval": interval,
        "hard_limit": form.get("hard_limit", ""),
        "hard_action": form.get("hard_action", "block"),
    }
    if form.get("soft_limit"):
        document["soft_limit"] = form["soft_limit"]
        document["soft_action"] = form.get("soft_action", "alert")
    if form.get("degrade_to"):
        document["degrade_to"] = form["degrade_to"]
    if document["scope"]["kind"] == "global":
        document["scope"] = {"kind": "global"}
    return document


def _budget_change(session: Session, change: Callable[[str], object], notice: str) -> Response:
    """Run ``change`` (given the admin's actor name) as an admin, then back to Budgets with
    ``notice``, or with the records' error."""
    if not session.viewer.is_admin:
        return _back("/budgets", "Creating and changing budgets is for admins.")
    try:
        change(session.viewer.actor)
    except RecordError as error:
        return _back("/budgets", error.message)
    return _back("/budgets", notice=notice)


async def create_budget(console: Console, request: Request, session: Session) -> Response:
    form: dict[str, str] = request.state.form
    budgets = console.ctx.records.budgets
    return _budget_change(
        session,
        lambda actor: budgets.create(_budget_document(form), actor=actor),
        f"Budget {form.get('id', '')} created.",
    )


async def change_budget(console: Console, request: Request, session: Session) -> Response:
    """New limits for an API-managed budget (what it counts cannot change under its id)."""
    form: dict[str, str] = request.state.form
    changes = {name: form[name] for name in ("hard_limit", "soft_limit") if form.get(name)}
    budget_id = request.path_params["budget_id"]
    budgets = console.ctx.records.budgets
    return _budget_change(
        session,
        lambda actor: budgets.update(budget_id, changes, actor=actor),
        f"Budget {budget_id} changed.",
    )


async def switch_budget(console: Console, request: Request, session: Session) -> Response:
    budget_id = request.path_params["budget_id"]
    enabled = request.state.form.get("enabled") == "true"
    budgets = console.ctx.records.budgets
    return _budget_change(
        session,
        lambda actor: budgets.set_enabled(budget_id, enabled, actor=actor),
        f"Budget {budget_id} {'enabled' if enabled else 'disabled'}.",
    )


def _time_left(until: datetime, now: datetime | None = None) -> str:
    """How long a pending request still waits, for people: "3 h 20 min", "12 min", "< 1 min"."""
    seconds = int((until - (now or datetime.now(UTC))).total_seconds())
    if seconds < 60:
        return "< 1 min" if seconds > 0 else "expiring"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _utc(at: datetime) -> datetime:
    """A time from a form: UTC when it names no offset (the field says UTC), whatever the
    server's own zone."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
