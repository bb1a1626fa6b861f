"""``spendgate approvals``: list, show, request, approve, deny — through the admin API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

from spendgate.cli.client import record_path
from spendgate.cli.output import (
    Column,
    JsonOption,
    call_and_show,
    cli_errors,
    console,
    print_json,
    print_table,
    say,
    short_time,
    time_note,
    usd,
)

__all__ = ["approvals_app"]

approvals_app = typer.Typer(
    help="Budget-override approvals: what blocked requests ask for, and their decisions.",
    no_args_is_help=True,
)

_COLUMNS = [
    Column("id", "id"),
    Column("state", "state", priority=1),
    Column("policy_id", "budget", priority=2),
    Column("requester", "requester", priority=3),
    Column("asked", "asked", priority=4),
    Column("decided", "expires / decided", priority=5),
    Column("blocked", "blocked request", priority=6, wrap=True),
    Column("project", "project", priority=7),
]


def _row(approval: Mapping[str, Any]) -> dict[str, Any]:
    context = approval.get("context") or {}
    blocked = (
        f"{context['model']} ≤ {usd(context.get('estimated_cost_usd'))}"
        if context.get("model")
        else approval.get("reason") or "—"
    )
    if approval["state"] == "pending":
        decided = f"expires {short_time(approval['expires_at'])}"
    else:
        when = approval.get("consumed_at") or approval.get("decided_at") or approval["expires_at"]
        decided = f"{approval['state']} {short_time(when)}"
    return {
        **approval,
        "asked": short_time(approval["created_at"]),
        "blocked": blocked,
        "decided": decided,
    }


def _show(approval: Mapping[str, Any]) -> None:
    console.print(
        f"Approval [bold]{approval['id']}[/bold]: {approval['state']} — budget "
        f"{approval['policy_id']} for {approval['requester']} (member {approval['member']}, "
        f"project {approval['project'] or '—'})",
        highlight=False,
    )
    context = approval.get("context")
    if context:
        say(
            f"Blocked request: decision {context['decision_id']}, {context['model']}, "
            f"estimated cost ≤ {usd(context.get('estimated_cost_usd'))} (upper bound); "
            f"{context['metric']} used {context['consumed']} + reserved {context['reserved']} "
            f"+ this request {context['request_amount']} > limit {context['hard_limit']}"
        )
    if approval.get("reason"):
        say(f"Reason: {approval['reason']}")
    if approval.get("scope"):
        grant = f"Granted: {approval['scope']}"
        if approval.get("until"):
            grant += f" until {short_time(approval['until'])}"
        if approval.get("session_id"):
            grant += f", session {approval['session_id']}"
        if approval.get("granted_amount"):
            grant += f", at most {approval['granted_amount']} beyond the limit"
        say(grant)
    if approval.get("note"):
        say(f"Note: {approval['note']}")
    events = [
        {**event, "when": short_time(event["at"]), "actor": event.get("actor") or "—"}
        for event in approval.get("events", [])
    ]
    print_table(
        events,
        [("when", "when"), ("event", "event"), ("actor", "by")],
        title=f"history ({time_note()})",
    )


@approvals_app.command("list")
def list_command(
    ctx: typer.Context,
    state: Annotated[
        str | None,
        typer.Option(help="pending, approved, denied, expired or consumed."),
    ] = None,
    policy: Annotated[str | None, typer.Option(help="Only requests about this budget.")] = None,
    requester: Annotated[str | None, typer.Option(help="Only this requester's.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Approval requests you may see, newest first."""
    from spendgate.cli.client import client_from

    params = {"state": state, "policy_id": policy, "requester": requester}
    with cli_errors():
        answer = client_from(ctx).get(
            "/approvals", params={k: v for k, v in params.items() if v is not None}
        )
    if json_output:
        print_json(answer)
        return
    print_table(
        [_row(a) for a in answer["data"]], _COLUMNS, title=f"approval requests ({time_note()})"
    )


@approvals_app.command("show")
def show_command(
    ctx: typer.Context,
    approval_id: Annotated[str, typer.Argument(help="The request's id (apr_…).")],
    json_output: JsonOption = False,
) -> None:
    """One request: what was blocked, the decision and its history."""
    call_and_show(
        ctx, lambda api: api.get(record_path("approvals", approval_id)), json_output, _show
    )


@approvals_app.command("request")
def request_command(
    ctx: typer.Context,
    policy: Annotated[str, typer.Option(help="The budget to exceed.")],
    reason: Annotated[str, typer.Option(help="Why (the approver reads it).")],
    amount: Annotated[
        str | None, typer.Option(help="How much beyond the limit, in the budget's metric.")
    ] = None,
    session: Annotated[str | None, typer.Option(help="For this session only.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Ask ahead for an override of a budget that applies to your key."""

    body: dict[str, Any] = {"policy_id": policy, "reason": reason}
    if amount is not None:
        body["amount"] = amount
    if session is not None:
        body["session_id"] = session
    call_and_show(
        ctx,
        lambda api: api.post("/approvals", json=body),
        json_output,
        lambda answer: console.print(
            f"Approval request [bold]{answer['id']}[/bold] is {answer['state']}."
        ),
    )


@approvals_app.command("approve")
def approve_command(
    ctx: typer.Context,
    approval_id: Annotated[str, typer.Argument(help="The request's id (apr_…).")],
    scope: Annotated[
        str, typer.Option(help="once (one request), session, or until a time.")
    ] = "once",
    until: Annotated[str | None, typer.Option(help="ISO 8601 time, for --scope until.")] = None,
    session: Annotated[
        str | None,
        typer.Option(help="For --scope session (default: the blocked request's session)."),
    ] = None,
    amount: Annotated[
        str | None, typer.Option(help="Cap beyond the limit, in the budget's metric.")
    ] = None,
    note: Annotated[str | None, typer.Option(help="A note kept with the decision.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Grant a pending request (never your own)."""

    body: dict[str, Any] = {"scope": scope}
    for key, value in (("until", until), ("session_id", session), ("amount", amount),
                       ("note", note)):  # fmt: skip
        if value is not None:
            body[key] = value
    call_and_show(
        ctx,
        lambda api: api.post(record_path("approvals", approval_id, "approve"), json=body),
        json_output,
        lambda answer: console.print(
            f"Approved {answer['id']} ({answer['scope']}).", highlight=False
        ),
    )


@approvals_app.command("deny")
def deny_command(
    ctx: typer.Context,
    approval_id: Annotated[str, typer.Argument(help="The request's id (apr_…).")],
    reason: Annotated[str, typer.Option(help="Why (the requester reads it).")],
    json_output: JsonOption = False,
) -> None:
    """Deny a pending request."""

    call_and_show(
        ctx,
        lambda api: api.post(
            record_path("approvals", approval_id, "deny"), json={"reason": reason}
        ),
        json_output,
        lambda answer: console.print(f"Denied {answer['id']}.", highlight=False),
    )
