"""``spendgate alerts``: list, show, ack — through the admin API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich.markup import escape

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
)

__all__ = ["alerts_app"]

alerts_app = typer.Typer(
    help="Alerts: budgets, cost spikes, spend rates, forecasts, providers, unpriced models.",
    no_args_is_help=True,
)

_COLUMNS = [
    Column("id", "id"),
    Column("severity", "severity"),
    Column("summary", "summary", wrap=True),
    Column("state", "state", priority=1),
    Column("occurrences", "count", priority=2),
    Column("seen", "last seen", priority=3),
    Column("kind", "kind", priority=4),
    Column("scope", "scope", priority=5),
]


def _row(alert: Mapping[str, Any]) -> dict[str, Any]:
    return {**alert, "seen": short_time(alert["last_seen"])}


def _show(alert: Mapping[str, Any]) -> None:
    console.print(
        f"Alert [bold]{alert['id']}[/bold]: "
        + escape(f"{alert['state']}, {alert['severity']} {alert['kind']} — {alert['scope']}"),
        highlight=False,
    )
    say(alert["summary"])
    say(f"Why: {alert['reason']}")
    say(f"Action: {alert['recommended_action']}")
    # Two short lines rather than one that wraps at 80 columns.
    say(f"First seen {short_time(alert['first_seen'])} ({time_note()})")
    say(f"Last seen {short_time(alert['last_seen'])}, {alert['occurrences']:,} time(s) in all")
    if alert.get("acknowledged_by"):
        say(f"Acknowledged by {alert['acknowledged_by']} at {short_time(alert['acknowledged_at'])}")
    if alert.get("resolved_at"):
        say(f"Resolved at {short_time(alert['resolved_at'])}")
    deliveries = [
        {
            **delivery,
            "when": short_time(delivery["created_at"]),
            "answer": delivery.get("last_error") or str(delivery.get("last_status") or "—"),
        }
        for delivery in alert.get("deliveries", [])
    ]
    print_table(
        deliveries,
        [
            Column("when", "when"),
            Column("webhook_id", "webhook"),
            Column("event", "event"),
            Column("state", "state"),
            # Why a delivery failed matters more on a narrow terminal than how often it tried.
            Column("answer", "last answer", priority=1, wrap=True),
            Column("attempts", "attempts", priority=2),
            Column("id", "delivery id", priority=3),
        ],
        title="deliveries",  # their times are in the zone the "Seen" line names
    )


@alerts_app.command("list")
def list_command(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(help="open, acknowledged or resolved.")] = None,
    kind: Annotated[
        str | None, typer.Option(help="budget_threshold, cost_spike, provider_health, …")
    ] = None,
    severity: Annotated[str | None, typer.Option(help="info, warning or critical.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.", min=1, max=1000)] = 100,
    json_output: JsonOption = False,
) -> None:
    """Alerts you may see, most recently seen first."""
    from spendgate.cli.client import client_from

    params = {"state": state, "kind": kind, "severity": severity, "limit": limit}
    with cli_errors():
        answer = client_from(ctx).get(
            "/alerts", params={k: v for k, v in params.items() if v is not None}
        )
    if json_output:
        print_json(answer)
        return
    print_table([_row(a) for a in answer["data"]], _COLUMNS, title=f"alerts ({time_note()})")


@alerts_app.command("show")
def show_command(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(help="The alert's id (alr_…).")],
    json_output: JsonOption = False,
) -> None:
    """One alert: why, what to do, and its webhook deliveries."""
    call_and_show(ctx, lambda api: api.get(record_path("alerts", alert_id)), json_output, _show)


@alerts_app.command("ack")
def ack_command(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(help="The alert's id (alr_…).")],
    json_output: JsonOption = False,
) -> None:
    """Acknowledge an alert: someone is on it, no reminders until it resolves."""
    call_and_show(
        ctx, lambda api: api.post(record_path("alerts", alert_id, "ack")), json_output, _acked
    )


def _acked(alert: Mapping[str, Any]) -> None:
    say(f"Alert {alert['id']} is {alert['state']} (by {alert['acknowledged_by']}).")
