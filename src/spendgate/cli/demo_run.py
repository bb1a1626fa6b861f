"""What ``spendgate demo`` runs: the mock upstream and the gateway on the built-in demo config, a
short burst of varied traffic, a summary, then serving until Ctrl-C. Kept apart from the
command's definition so that the CLI imports the gateway only when the demo runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
import typer
import uvicorn
from rich import box
from rich.console import Console
from rich.table import Table

from spendgate.config import Config, load_config
from spendgate.domain.models import ProviderKind
from spendgate.domain.pricing import Usage
from spendgate.gateway.compose import create_gateway
from spendgate.mock_upstream.runner import MockUpstream
from spendgate.store.journal import Journal

if TYPE_CHECKING:
    from spendgate.alerting import AlertService

__all__ = ["run_demo"]

# Piped output is rendered this wide: wider than any line the demo prints, so none is wrapped.
_PIPED_WIDTH = 400
# How long the summary waits for the detector to look at the traffic (about a second when
# the machine is not loaded).
_ALERTS_WAIT_SECONDS = 15.0
_LONG_CONTEXT = "The cache layer sits between the API and the database. " * 130


@dataclass(frozen=True, slots=True)
class _Call:
    label: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


def _calls() -> list[_Call]:
    ask = [{"role": "user", "content": "What is the capital of France?"}]
    complex_prompt = [
        {
            "role": "user",
            "content": "Analyze step by step why this cache invalidation design loses writes, "
            "compare it with write-through and prove which one is correct.\n"
            "```python\ndef put(key, value):\n    cache[key] = value\n    db.write(key, value)\n"
            "```\n" + _LONG_CONTEXT,
        }
    ]
    summary = [{"role": "user", "content": "Summarise this log: " + "request ok; " * 200}]
    return [
        _Call("simple question", "/v1/chat/completions", {"model": "gpt-4o", "messages": ask}, {}),
        _Call(
            "complex reasoning",
            "/v1/chat/completions",
            {"model": "gpt-4o", "messages": complex_prompt, "max_tokens": 1500},
            {},
        ),
        _Call(
            "auxiliary summary",
            "/v1/chat/completions",
            {"model": "gpt-4o", "messages": summary, "max_tokens": 300},
            {"x-spendgate-task-class": "auxiliary_summary", "x-spendgate-agent-id": "indexer"},
        ),
        _Call(
            "streamed answer",
            "/v1/chat/completions",
            {"model": "gpt-4o", "messages": ask, "stream": True, "max_tokens": 200},
            {"x-spendgate-session-id": "demo-session"},
        ),
        _Call(
            "Anthropic Messages API",
            "/v1/messages",
            {"model": "claude-opus-4", "messages": ask, "max_tokens": 300},
            {},
        ),
        _Call(
            "worst case over the daily $5 budget",
            "/v1/chat/completions",
            {"model": "claude-opus-4", "messages": complex_prompt, "max_tokens": 32000, "n": 3},
            {},
        ),
    ]


def run_demo(port: int, mock_port: int, serve: bool) -> None:
    """Run the demo until Ctrl-C (or once, without ``serve``)."""
    if port == mock_port:
        raise typer.BadParameter(
            f"the gateway and the mock upstream cannot both listen on {port}; "
            "choose different ports with --port and --mock-port",
            param_hint="'--port' / '--mock-port'",
        )
    _require_free_port(mock_port, "the mock upstream", "--mock-port")
    _require_free_port(port, "the gateway", "--port")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_demo(port, mock_port, serve))


def _demo_config(mock_port: int) -> Config:
    """The built-in demo config, its mock provider moved to ``mock_port``."""
    config = load_config(None)
    providers = [
        spec.model_copy(update={"base_url": f"http://127.0.0.1:{mock_port}/v1"})
        if spec.kind is ProviderKind.MOCK
        else spec
        for spec in config.provider_specs
    ]
    return config.model_copy(update={"provider_specs": providers})


def _console() -> Console:
    """Rich at the terminal's width; piped (to a file, a pager, ``tee``), wide enough that
    nothing is wrapped: each table row and each command stays one line whatever COLUMNS says."""
    console = Console()
    return console if console.is_terminal else Console(width=_PIPED_WIDTH)


async def _demo(port: int, mock_port: int, serve: bool) -> None:
    console = _console()
    config = _demo_config(mock_port)
    env = dict(os.environ)
    # The demo's API keys: from the environment when set, else generated for this run.
    keys = {
        name: env.setdefault(name, "sg-demo-" + secrets.token_hex(8))
        for name in ("SPENDGATE_DEMO_KEY", "SPENDGATE_DEMO_ADMIN_KEY")
    }
    # The admin API's token, likewise: the CLI (another shell) needs it to talk to the demo.
    admin_token = env.setdefault("SPENDGATE_ADMIN_TOKEN", "sg-admin-" + secrets.token_hex(12))
    journal = Journal(config.database_url)
    gateway = create_gateway(config, env, journal=journal)
    server = uvicorn.Server(
        uvicorn.Config(gateway, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    async with MockUpstream(port=mock_port, latency_ms=20):
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        base = f"http://127.0.0.1:{port}"
        results = await _burst(base, keys["SPENDGATE_DEMO_KEY"])
        journal.flush(10)
        _summary(console, results, journal)
        await _approval(console, base, keys["SPENDGATE_DEMO_KEY"], admin_token, port)
        await _alerts(console, base, admin_token, port, gateway.alerts)
        key = keys["SPENDGATE_DEMO_KEY"]
        body = '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}'
        _lines(
            console,
            "",
            f"Gateway {base}/v1 · metrics {base}/metrics · health {base}/healthz",
            f"Console {base}/console (sign in with the admin token below)",
            f"Demo key {key} (SPENDGATE_DEMO_KEY); try it:",
            f"  curl {base}/v1/chat/completions -H 'authorization: Bearer {key}' -d '{body}'",
        )
        _cli_hints(console, base, port, admin_token)
        if serve:
            console.print("\nServing until Ctrl-C.")
            await task
        else:
            server.should_exit = True
            await task


def _lines(console: Console, *lines: str) -> None:
    """Plain lines, never wrapped (a terminal folds a long one; copying it gives it whole)."""
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _cli_hints(console: Console, base: str, port: int, admin_token: str) -> None:
    """How to reach this demo with the CLI: the admin token and a few commands to try."""
    url = "" if port == 8787 else f"--url {base} "
    # `make demo` installs the CLI into .venv: activating it puts `spendgate` on PATH.
    activate = f"source {Path(sys.prefix) / 'bin' / 'activate'}"
    commands = (
        *(() if shutil.which("spendgate") else (activate,)),
        f"export SPENDGATE_ADMIN_TOKEN={admin_token}",
        f"spendgate {url}models status",
        f'spendgate {url}models explain "Prove that there are infinitely many primes" '
        "--project acme --principal alice",
        f"spendgate {url}decisions list",
        f"spendgate {url}budgets list",
        f"spendgate {url}usage summary",
        f"spendgate {url}alerts list",
    )
    _lines(
        console,
        f"Admin token {admin_token} (SPENDGATE_ADMIN_TOKEN; admin API at {base}/api/v1)",
        "",
        "Try the CLI in another shell:",
        *(f"  {command}" for command in commands),
    )


@dataclass(frozen=True, slots=True)
class _Result:
    call: _Call
    status: int
    headers: dict[str, str]
    error: str | None


async def _burst(base: str, key: str) -> list[_Result]:
    results: list[_Result] = []
    async with aiohttp.ClientSession(headers={"authorization": f"Bearer {key}"}) as session:
        for call in _calls():
            async with session.post(
                base + call.path, data=orjson.dumps(call.body), headers=call.headers
            ) as response:
                raw = await response.read()
                error = None
                if response.status >= 400:
                    error = str(orjson.loads(raw).get("error", {}).get("message", ""))
                results.append(_Result(call, response.status, dict(response.headers), error))
    return results


def _summary(console: Console, results: list[_Result], journal: Journal) -> None:
    # Narrow enough for 80 columns: only the request's label wraps (between words); models,
    # actions and numbers never split.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("request", min_width=9)
    for column in ("requested → actual", "action"):
        table.add_column(column, no_wrap=True)
    for column in ("tokens in/out", "USD"):
        table.add_column(column, no_wrap=True, justify="right")
    total = Decimal(0)
    reroutes = 0
    refusals: list[_Result] = []
    for result in results:
        decision_id = result.headers.get("x-spendgate-decision-id")
        stored = journal.get_decision(decision_id) if decision_id else None
        requested = str(result.call.body["model"])
        actual = result.headers.get("x-spendgate-model", "—")
        action = result.headers.get("x-spendgate-routing-action", "block")
        usage = stored.decision.usage if stored is not None else None
        cost = stored.decision.actual_cost_usd if stored is not None else None
        if result.status >= 400:
            refusals.append(result)
            action = f"[red]{action} ({result.status})[/]"
        elif action != "proceed":
            reroutes += 1
        total += cost or 0
        table.add_row(
            result.call.label,
            f"{requested} → {actual}",
            action,
            _tokens(usage),
            "—" if cost is None else f"{cost:.6f}",
        )
    console.print("[bold]spendgate demo: what the gateway decided[/]")
    console.print(table)
    console.print(
        f"[bold]{len(results)}[/] requests · cost [bold]${total:.6f}[/] · "
        f"[bold]{reroutes}[/] rerouted · [bold]{len(refusals)}[/] blocked",
        highlight=False,
        soft_wrap=True,
    )
    # Why each refused request was refused, in full: a sentence, too long for a table cell.
    _lines(console, *(f"{r.call.label} ({r.status}): {r.error}" for r in refusals))


async def _approval(console: Console, base: str, key: str, admin_token: str, port: int) -> None:
    """One request blocked by a budget that asks for approval, approved as an approver would
    (through the admin API), and its retry passing."""
    body = orjson.dumps(
        {
            "model": "gpt-4o-mini",
            "max_tokens": 12000,
            "messages": [{"role": "user", "content": "Re-index last night's documents."}],
        }
    )
    agent = {"authorization": f"Bearer {key}", "x-spendgate-agent-id": "batch-bot"}
    url = base + "/v1/chat/completions"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=agent) as blocked:
            error = orjson.loads(await blocked.read()).get("error", {})
        approval_id = error.get("approval_id")
        if blocked.status != 403 or not approval_id:
            return  # the budget has room today (an earlier run's grant): nothing to show
        admin = {"authorization": f"Bearer {admin_token}"}
        decision = {"scope": "once", "note": "approved by the demo"}
        async with session.post(
            f"{base}/api/v1/approvals/{approval_id}/approve", json=decision, headers=admin
        ) as approved:
            await approved.read()
        async with session.post(url, data=body, headers=agent) as retry:
            await retry.read()
            decision_id = retry.headers.get("x-spendgate-decision-id", "—")
    cli = "spendgate " + ("" if port == 8787 else f"--url {base} ")
    _lines(
        console,
        "",
        "Approvals: agent batch-bot asked for up to 12,000 tokens over its 10,000 a day:",
        f"  blocked: {blocked.status} approval_required, approval request {approval_id}",
        f"  approved once ({approved.status}), as an approver would with:",
        f"    {cli}approvals approve {approval_id} --scope once",
        f"  retried: {retry.status}, decision {decision_id} (budget_override_applied)",
    )


async def _alerts(
    console: Console, base: str, admin_token: str, port: int, service: AlertService | None
) -> None:
    """The alerts the traffic above raised. The detector looks at requests off the request
    path, a burst at a time (within a second or so of them): wait until it has looked at all
    of them, not for the first alert, which a pass between the burst and the approval would
    open without the approval's."""
    if service is None:
        return
    deadline = time.monotonic() + _ALERTS_WAIT_SECONDS
    while not service.caught_up() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    admin = {"authorization": f"Bearer {admin_token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/api/v1/alerts", params={"state": "open"}, headers=admin) as listed,
    ):
        found: list[dict[str, str]] = orjson.loads(await listed.read())["data"]
    if not found:
        return
    cli = "spendgate " + ("" if port == 8787 else f"--url {base} ")
    _lines(
        console,
        "",
        "Alerts raised by this traffic (delivered to webhooks when configured):",
        *(f"  {alert['severity']}: {alert['summary']}" for alert in found),
        f"  see them with: {cli}alerts list",
    )


def _tokens(usage: Usage | None) -> str:
    if usage is None:
        return "—"
    return f"{usage.input_tokens:,} / {usage.output_tokens:,}"


def _require_free_port(port: int, what: str, option: str) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise typer.BadParameter(
                f"port {port} ({what}) is in use, perhaps by another spendgate demo or mock "
                "upstream; stop it, or choose free ports: --port for the gateway, "
                "--mock-port for the mock upstream",
                param_hint=f"'{option}'",
            ) from None
