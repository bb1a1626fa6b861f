"""``spendgate decisions list|show``: routing decisions the gateway journaled."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from spendgate.cli.client import record_path
from spendgate.cli.output import (
    Column,
    JsonOption,
    cli_errors,
    console,
    print_json,
    print_table,
    short_time,
    time_note,
    usd,
)

__all__ = ["decisions_app"]

decisions_app = typer.Typer(
    help="Routing decisions: what was asked, what was served, and why.",
    no_args_is_help=True,
)

_ACTIONS = "proceed, degrade, escalate, failover, block, approval_required"


@decisions_app.command("list")
def list_command(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option(help="Only this project.")] = None,
    principal: Annotated[str | None, typer.Option(help="Only this principal.")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="Only this key id.")] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent.")] = None,
    session: Annotated[str | None, typer.Option(help="Only this session.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this actual model.")] = None,
    action: Annotated[str | None, typer.Option(help=f"Only this action: {_ACTIONS}.")] = None,
    since: Annotated[str | None, typer.Option(help="From (ISO 8601; UTC without offset).")] = None,
    until: Annotated[str | None, typer.Option(help="Until, exclusive (ISO 8601).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Rows per page.")] = 20,
    cursor: Annotated[
        str | None, typer.Option(help="Page cursor printed by a previous list.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Newest decisions first."""
    from spendgate.cli.client import client_from

    params: dict[str, Any] = {
        "project": project,
        "principal": principal,
        "api_key": api_key,
        "agent": agent,
        "session": session,
        "model": model,
        "action": action,
        "since": since,
        "until": until,
        "limit": limit,
        "cursor": cursor,
    }
    with cli_errors():
        data = client_from(ctx).get("/decisions", params=params)
    if json_output:
        print_json(data)
        return
    rows = [
        {
            **row,
            "time": short_time(row["created_at"]),
            "who": f"{row['principal'] or '—'} / {row['project'] or '—'}",
            "route": _route(row["requested_model"], row["actual_model"]),
            "estimate": f"≤ {usd(row['estimated_cost_usd'])}"
            if row["estimated_cost_usd"] is not None
            else None,
            "cost": usd(row["actual_cost_usd"]) if row["actual_cost_usd"] is not None else None,
        }
        for row in data["data"]
    ]
    print_table(
        rows,
        [
            Column("id", "id"),
            Column("time", "time"),
            Column("route", "requested → actual", priority=1),
            Column("routing_action", "action", priority=2),
            Column("cost", "cost", priority=3),
            Column("total_tokens", "tokens", priority=4),
            Column("estimate", "estimate", priority=5),
            Column("who", "principal / project", priority=6),
            Column("status", "status", priority=7),
        ],
        title=f"Routing decisions ({time_note()})",
    )
    if data.get("next_cursor"):
        console.print(f"More: --cursor {data['next_cursor']}", highlight=False)


@decisions_app.command("show")
def show_command(
    ctx: typer.Context,
    decision_id: Annotated[str, typer.Argument(metavar="ID", help="The decision id.")],
    json_output: JsonOption = False,
) -> None:
    """One decision in full: explanation, candidates, budget evaluations, actual usage."""
    from spendgate.cli.client import client_from
    from spendgate.cli.decision_render import render_decision

    with cli_errors():
        data = client_from(ctx).get(record_path("decisions", decision_id))
    if json_output:
        print_json(data)
        return
    scopes = data["scopes"]
    who = ", ".join(f"{k} {v}" for k, v in scopes.items() if v) or "no scopes"
    console.print(
        f"Decision [bold]{data['id']}[/bold] at {short_time(data['created_at'])} "
        f"({time_note()}; {who})",
        highlight=False,
    )
    render_decision(data)


def _route(requested: str, actual: str | None) -> str:
    if actual is None:
        return f"{requested} → refused"
    return actual if actual == requested else f"{requested} → {actual}"
