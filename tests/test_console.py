"""The web console against a real gateway with the mock upstream and real traffic: signing in
(the cookie, its CSRF token), every page, the numbers equal to the admin API's, tenant
isolation, approving and acknowledging through forms, and the whole in Debian's Chromium (no
request to another host, no Content-Security-Policy violation), with a screenshot of each page
(``SPENDGATE_SCREENSHOTS`` names a folder to keep them in)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from admin_support import AdminGateway, admin_gateway
from browser_support import CHROMIUM, CHROMIUM_ARGS, guard
from test_approvals import CONFIG as APPROVALS_CONFIG
from test_approvals import ENV as APPROVALS_ENV
from test_approvals import chat as approval_chat

PAGES = ["/", "/insights", "/budgets", "/approvals", "/alerts", "/models"]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("console")) as running:
        traffic = [("alice", "Say hello."), ("bob", "Prove it step by step, please."),
                   ("dave", "Hello from globex."), ("alice", "Summarise this.")]  # fmt: skip
        for key, text in traffic:
            assert running.chat(key, text).status_code == 200
        running.flush()
        yield running


class Console:
    """A signed-in browser-less client of the console: it keeps the cookie and CSRF token."""

    def __init__(self, gw: AdminGateway, credential: str) -> None:
        self.gw = gw
        self.client = httpx.Client(base_url=gw.url, follow_redirects=False, timeout=30)
        form = self.client.get("/console/login")
        token = _csrf(form.text)
        signed = self.client.post("/console/login", data={"csrf": token, "credential": credential})
        assert signed.status_code == 303, signed.text
        self.csrf = ""

    def get(self, path: str, **options: Any) -> httpx.Response:
        page = self.client.get("/console" + path, **options)
        if page.status_code == 200 and 'name="csrf"' in page.text:
            self.csrf = _csrf(page.text)
        return page

    def post(self, path: str, data: dict[str, str], *, csrf: bool = True) -> httpx.Response:
        if not self.csrf:
            self.get("/")
        fields = {"csrf": self.csrf, **data} if csrf else data
        return self.client.post("/console" + path, data=fields)


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def _values(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-metric="([^"]+)" data-value="([^"]*)"', html))


def test_signing_in(gw: AdminGateway) -> None:
    client = httpx.Client(base_url=gw.url, timeout=30)
    first = client.get("/console/", follow_redirects=False)
    assert (first.status_code, first.headers["location"]) == (303, "/console/login")
    form = client.get("/console/login")
    assert "content-security-policy" in form.headers
    token = _csrf(form.text)
    wrong = client.post("/console/login", data={"csrf": token, "credential": "sg-nope"})
    assert wrong.status_code == 401
    assert "not a valid admin token or API key" in wrong.text
    forged = httpx.post(gw.url + "/console/login", data={"csrf": "x", "credential": gw.token})
    assert forged.status_code == 403  # no sign-in cookie: a cross-site form cannot sign in
    signed = client.post(
        "/console/login", data={"csrf": _csrf(client.get("/console/login").text),
                                "credential": gw.token}, follow_redirects=False,
    )  # fmt: skip
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"]
    assert "spendgate_console=" in cookie
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/console"):
        assert attribute.lower() in cookie.lower()
    assert gw.token not in cookie  # the cookie holds no secret
    page = client.get("/console/")
    assert page.status_code == 200
    assert "<script>" not in page.text  # no inline script: the policy would refuse it
    tampered = httpx.get(
        gw.url + "/console/", cookies={"spendgate_console": "e30." + "0" * 64},
        follow_redirects=False,
    )  # fmt: skip
    assert tampered.status_code == 303


def test_every_page_answers_for_the_admin(gw: AdminGateway) -> None:
    console = Console(gw, gw.token)
    for path in PAGES:
        page = console.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "default-src 'self'" in csp
        for attribute in ("src", "href", "action"):
            for link in re.findall(rf'{attribute}="([^"]+)"', page.text):
                assert not urlsplit(link).netloc, (path, link)  # nothing from another host


def test_the_grid_equals_the_api_summary(gw: AdminGateway) -> None:
    console = Console(gw, gw.token)
    values = _values(console.get("/", params={"window": "7d"}).text)
    summary = gw.get("/usage/summary", params={"window": "7d"}).json()
    assert values["requests"] == str(summary["requests"]) != "0"
    assert values["tokens"] == str(summary["total_tokens"])
    assert values["cost_usd"] == summary["cost_usd"]
    assert values["blocked"] == str(summary["blocked"])
    assert values["rerouted"] == str(summary["rerouted"])
    assert values["saved_by_routing_usd"] == summary["saved_by_routing_usd"]
    assert values["avg_latency_ms"] == str(summary["avg_latency_ms"])
    # The p95 is the histogram's bound, shown as one; the mock answers in well under 50 ms.
    assert summary["timed_requests"] == summary["settled"] > 0
    assert values["p95_latency_ms"] == str(summary["p95_latency_ms_at_most"]) == "50.0"
    assert "≤ 50 ms" in console.get("/", params={"window": "7d"}).text
    pending = gw.get("/approvals", params={"state": "pending"}).json()["data"]
    assert values["pending_approvals"] == str(len(pending))
    acme = _values(console.get("/", params={"project": "acme"}).text)
    acme_summary = gw.get("/usage/summary", params={"project": "acme", "window": "24h"}).json()
    assert acme["requests"] == str(acme_summary["requests"])


def test_a_custom_range_of_local_days(gw: AdminGateway) -> None:
    console = Console(gw, gw.token)
    prague = ZoneInfo("Europe/Prague")
    last = datetime.now(prague).date()
    first = last - timedelta(days=2)
    html = console.get(
        "/", params={"window": "custom", "since": first.isoformat(), "until": last.isoformat(),
                     "tz": "Europe/Prague"},
    ).text  # fmt: skip
    start = datetime(first.year, first.month, first.day, tzinfo=prague)
    after = last + timedelta(days=1)
    end = datetime(after.year, after.month, after.day, tzinfo=prague)
    summary = gw.get(
        "/usage/summary", params={"since": start.isoformat(), "until": end.isoformat()}
    ).json()
    assert _values(html)["requests"] == str(summary["requests"]) != "0"
    assert 'value="custom" selected' in html
    chart = json.loads(re.search(r'id="chart-data">(.*?)</script>', html, re.S).group(1))
    assert len(chart["starts"]) == 3  # three local days (auto: days beyond 48 hours)
    assert chart["starts"][0] == int(start.timestamp())
    # Hourly buckets over 90 days would be 2,160 bars: drawn by day, and said so.
    wide = console.get("/", params={"window": "90d", "bucket": "hour"}).text
    wide_chart = json.loads(re.search(r'id="chart-data">(.*?)</script>', wide, re.S).group(1))
    assert wide_chart["bucket"] == "day"
    assert len(wide_chart["starts"]) in (90, 91)
    assert "Hourly buckets are drawn for ranges up to 31 days" in wide
    # A custom range without its dates, or backwards, falls back to the last 24 hours.
    for broken in ({"since": "2026-01-02"}, {"since": "2026-02-01", "until": "2026-01-01"}):
        fallback = console.get("/", params={"window": "custom", **broken}).text
        assert 'value="24h" selected' in fallback


def test_a_decision_shows_its_explanation(gw: AdminGateway) -> None:
    console = Console(gw, gw.token)
    listing = console.get("/insights").text
    ids = re.findall(r'data-decision-id="([^"]+)"', listing)
    assert len(ids) >= 4
    detail = gw.get(f"/decisions/{ids[0]}").json()
    page = console.get(f"/insights/{ids[0]}")
    assert page.status_code == 200
    for line in detail["explanation"]:
        assert line.replace("'", "&#39;").replace('"', "&#34;") in page.text
    assert console.get("/insights/nope").status_code == 404


def test_a_project_key_sees_its_project_only(gw: AdminGateway) -> None:
    alice, dave = Console(gw, gw.secrets["alice"]), Console(gw, gw.secrets["dave"])
    acme_ids = re.findall(r'data-decision-id="([^"]+)"', alice.get("/insights").text)
    globex_ids = re.findall(r'data-decision-id="([^"]+)"', dave.get("/insights").text)
    assert acme_ids
    assert globex_ids
    assert not set(acme_ids) & set(globex_ids)
    assert dave.get(f"/insights/{acme_ids[0]}").status_code == 404
    # The URL cannot widen it: the project filter is the key's own.
    values = _values(dave.get("/", params={"project": "acme"}).text)
    globex = gw.get("/usage/summary", params={"project": "globex"}).json()
    assert values["requests"] == str(globex["requests"])


def test_a_form_without_its_csrf_token_is_refused(gw: AdminGateway) -> None:
    console = Console(gw, gw.token)
    refused = console.post("/alerts/alr_x/ack", {}, csrf=False)
    assert refused.status_code == 403
    wrong = console.client.post("/console/alerts/alr_x/ack", data={"csrf": "wrong"})
    assert wrong.status_code == 403
    signed_out = httpx.post(gw.url + "/console/alerts/alr_x/ack", data={"csrf": "x"})
    assert signed_out.status_code == 401


@pytest.fixture(scope="module")
def approvals_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    with admin_gateway(tmp_path_factory.mktemp("console-approvals"), APPROVALS_CONFIG,
                       APPROVALS_ENV) as running:  # fmt: skip
        yield running


def test_the_approvals_heading_says_when_the_queue_changed(approvals_gw: AdminGateway) -> None:
    gw = approvals_gw
    admin = Console(gw, gw.token)
    page = admin.get("/approvals").text
    poll = re.search(r'id="pending-head" hx-get="([^"]+)"', page)
    assert poll is not None
    assert "every 10s" in page
    assert "queue changed" not in admin.client.get(poll.group(1).replace("&amp;", "&")).text
    asked = gw.post(
        "/approvals", json={"policy_id": "acme-tokens", "reason": "a new one"},
        token=gw.secrets["bob"],
    )  # fmt: skip
    assert asked.status_code in (200, 201), asked.text
    head = admin.client.get(poll.group(1).replace("&amp;", "&")).text
    assert "the queue changed since this page loaded: reload" in head
    # Leave the module's queue as found (one pending request per requester and budget).
    denied = gw.post(f"/approvals/{asked.json()['id']}/deny", json={"reason": "test"})
    assert denied.status_code == 200, denied.text


def test_an_approver_approves_in_the_console_and_the_client_passes(
    approvals_gw: AdminGateway,
) -> None:
    gw = approvals_gw
    blocked = approval_chat(gw, "carol")
    assert blocked.status_code == 403
    approval_id = blocked.json()["error"]["approval_id"]
    carol = Console(gw, gw.secrets["carol"])
    own = carol.get("/approvals").text
    assert f'data-approval-id="{approval_id}"' in own
    assert "not yours to decide" in own  # a requester never decides its own
    approver = Console(gw, gw.token)
    assert f'data-approval-id="{approval_id}"' in approver.get("/approvals").text
    done = approver.post(f"/approvals/{approval_id}/approve", {"scope": "once"})
    assert (done.status_code, done.headers["location"]) == (303, "/console/approvals")
    assert gw.get(f"/approvals/{approval_id}").json()["state"] == "approved"
    assert approval_chat(gw, "carol").status_code == 200


def test_acknowledging_an_alert(gw: AdminGateway) -> None:
    journal = gw.served.journal
    assert journal is not None
    alert, _ = journal.alerts.upsert(
        alert_kind="cost_spike", severity="warning", scope="project:acme",
        summary="A request under project:acme cost $3.10", reason="31x the usual.",
        recommended_action="Look at it.", dedupe_key="console|ack", tenant="project:acme",
    )  # fmt: skip
    dave = Console(gw, gw.secrets["dave"])
    assert f'data-alert-id="{alert.id}"' not in dave.get("/alerts").text
    refused = dave.post(f"/alerts/{alert.id}/ack", {})
    assert "alert" in refused.headers["location"]  # back with the error: not its alert
    assert gw.get(f"/alerts/{alert.id}").json()["state"] == "open"
    console = Console(gw, gw.token)
    assert f'data-alert-id="{alert.id}"' in console.get("/alerts").text
    done = console.post(f"/alerts/{alert.id}/ack", {})
    assert done.status_code == 303
    assert gw.get(f"/alerts/{alert.id}").json()["state"] == "acknowledged"


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")
def test_the_console_in_a_browser(gw: AdminGateway, tmp_path: Path) -> None:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    shots = Path(os.environ.get("SPENDGATE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            watched = guard(page)
            page.goto(gw.url + "/console/")
            page.fill("#credential", gw.token)
            page.click("button[type=submit]")
            page.wait_for_selector('[data-metric="requests"]')
            requests = page.get_attribute('[data-metric="requests"]', "data-value")
            assert requests == str(gw.get("/usage/summary").json()["requests"])
            # A DST-changing zone: the chart has one bar slot per local hour of the range.
            page.goto(gw.url + "/console/?window=7d&bucket=hour&tz=Europe/Prague")
            page.wait_for_selector("#chart-cost[data-buckets]")
            buckets = page.get_attribute("#chart-cost", "data-buckets")
            timeline = gw.get(
                "/usage/timeline", params={"window": "7d", "bucket": "hour", "tz": "Europe/Prague"}
            ).json()
            assert buckets == str(len(timeline["data"]))
            assert page.locator("#chart-cost canvas").count() == 1
            page.goto(gw.url + "/console/budgets")
            page.wait_for_selector(".burn canvas")
            for path in PAGES:
                page.goto(gw.url + "/console" + path)
                page.wait_for_load_state("networkidle")
                name = path.strip("/") or "usage"
                page.screenshot(path=str(shots / f"console-{name}.png"), full_page=True)
            # One decision's timeline, as an approver or an auditor opens it.
            page.goto(gw.url + "/console/insights")
            page.locator("[data-decision-id] a").first.click()
            page.wait_for_selector("h1")
            page.screenshot(path=str(shots / "console-decision.png"), full_page=True)
            violations = page.evaluate("window.violations")
            # A phone: nothing wider than the screen but tables, which scroll in place.
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone_watch = guard(phone)
            phone.context.add_cookies(page.context.cookies())
            phone.goto(gw.url + "/console/")
            phone.wait_for_selector("#chart-cost canvas")
            assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            phone.screenshot(path=str(shots / "console-usage-phone.png"), full_page=True)
        finally:
            browser.close()
    assert not watched.refused
    assert not phone_watch.refused
    assert not watched.errors
    assert violations == []


def test_a_key_requests_an_override_from_the_budgets_page(approvals_gw: AdminGateway) -> None:
    gw = approvals_gw
    bob = Console(gw, gw.secrets["bob"])
    page = bob.get("/budgets").text
    assert 'action="/console/budgets/acme-tokens/override"' in page
    empty = bob.post("/budgets/acme-tokens/override", {"reason": " "})
    assert "error=" in empty.headers["location"]
    asked = bob.post("/budgets/acme-tokens/override", {"reason": "month-end batch",
                                                      "amount": "5000"})  # fmt: skip
    assert asked.status_code == 303
    assert asked.headers["location"].startswith("/console/approvals?notice=")
    [approval] = [
        a
        for a in gw.get("/approvals", params={"state": "pending"}).json()["data"]
        if a["requester"] == "bob"
    ]
    assert (approval["policy_id"], approval["reason"], approval["amount"]) == (
        "acme-tokens", "month-end batch", "5000",
    )  # fmt: skip
    notice = bob.client.get(asked.headers["location"]).text
    assert f"Override requested: {approval['id']}" in notice


def test_an_admin_tests_the_connections_from_the_models_page(gw: AdminGateway) -> None:
    console = Console(gw, gw.token)
    assert 'action="/console/models/test"' in console.get("/models").text
    tested = console.post("/models/test", {})
    assert tested.status_code == 200
    assert 'data-tests="ok"' in tested.text
    assert 'data-provider-test="alpha"' in tested.text
    alice = Console(gw, gw.secrets["alice"])
    assert 'action="/console/models/test"' not in alice.get("/models").text
    assert alice.post("/models/test", {}).status_code == 403


def test_exporting_what_the_usage_page_shows(gw: AdminGateway) -> None:
    console = Console(gw, gw.token)
    assert 'href="/console/export?window=7d"' in console.get("/", params={"window": "7d"}).text
    exported = console.get("/export", params={"window": "7d"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = exported.text.strip().splitlines()
    summary = gw.get("/usage/summary", params={"window": "7d"}).json()
    assert len(rows) - 1 == summary["requests"]  # a header, then one row per decision
    as_json = console.get("/export", params={"format": "json", "project": "globex"}).json()
    assert {row["project"] for row in as_json["data"]} == {"globex"}
    dave = Console(gw, gw.secrets["dave"])  # confined: the project filter is its own
    confined = dave.get("/export", params={"format": "json", "project": "acme"}).json()
    assert {row["project"] for row in confined["data"]} == {"globex"}


def test_budgets_show_a_burn_down_that_adds_up_to_the_meter(gw: AdminGateway) -> None:
    console = Console(gw, gw.token)
    page = console.get("/budgets").text
    charts = re.findall(
        r'<div class="burn" data-budget="([^"]+)" data-member="([^"]+)"></div>\s*'
        r'<script type="application/json" class="burn-data">([^<]+)</script>',
        page,
    )
    drawn = {(budget, member): json.loads(data) for budget, member, data in charts}
    acme = drawn[("acme-monthly-tokens", "acme")]
    [budget] = [b for b in gw.get("/budgets").json()["data"] if b["id"] == "acme-monthly-tokens"]
    [use] = budget["consumption"]
    assert acme["used"][-1] == float(use["settled"]) > 0  # the rollups agree with the ledger
    assert acme["limit"] == 2_000_000
    assert "At this pace the limit is not reached in this window." in page
    assert ("principal-daily-usd", "alice") in drawn


def test_create_a_budget_push_past_its_soft_limit_see_the_bar_and_the_alert(
    gw: AdminGateway,
) -> None:
    console = Console(gw, gw.token)
    form = {"id": "globex-console", "scope_kind": "project", "scope_id": "globex",
            "metric": "tokens", "interval": "daily", "hard_limit": "100000",
            "hard_action": "block", "soft_limit": "10", "soft_action": "alert"}  # fmt: skip
    invalid = console.post("/budgets", {**form, "hard_limit": "-1"})
    assert "error=" in invalid.headers["location"]
    created = console.post("/budgets", form)
    assert created.headers["location"] == "/console/budgets?notice=Budget+globex-console+created."
    assert gw.chat("dave", "Hello again from globex.").status_code == 200  # > 10 tokens
    page = console.get("/budgets").text
    assert 'data-budget-id="globex-console"' in page
    assert re.search(r'data-member="globex" data-percent="0\.\d+"', page)
    deadline = time.monotonic() + 15
    while "globex-console for globex passed its soft limit" not in console.get("/alerts").text:
        assert time.monotonic() < deadline, "no soft-limit alert"
        time.sleep(0.2)
    changed = console.post("/budgets/globex-console/limits", {"hard_limit": "200000"})
    assert "notice=" in changed.headers["location"]
    assert gw.get("/budgets/globex-console").json()["hard_limit"] == "200000"
    console.post("/budgets/globex-console/enabled", {"enabled": "false"})
    assert gw.get("/budgets/globex-console").json()["enabled"] is False
    alice = Console(gw, gw.secrets["alice"])
    refused = alice.post("/budgets", {**form, "id": "sneaky"})
    assert "for+admins" in refused.headers["location"]
    assert gw.get("/budgets/sneaky").status_code == 404


def test_time_left_reads_like_a_person_would_say_it() -> None:
    from datetime import UTC, datetime, timedelta

    from spendgate.console.pages import _time_left

    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    assert _time_left(now + timedelta(hours=3, minutes=20, seconds=5), now) == "3 h 20 min"
    assert _time_left(now + timedelta(minutes=12), now) == "12 min"
    assert _time_left(now + timedelta(seconds=30), now) == "< 1 min"
    assert _time_left(now - timedelta(seconds=1), now) == "expiring"
