"""Rich rendering of one routing decision (``models explain`` and ``decisions show``): the
chosen model, the complexity score with its terms, each candidate and why it won or lost, each
budget evaluation with consumed/remaining, the routing action and reason codes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table

from spendgate.cli.output import Column, console, print_table, short_time, time_note, usd

__all__ = ["render_decision"]


def _headline(data: Mapping[str, Any]) -> None:
    action = data["routing_action"]
    would = data.get("would_action")
    requested, actual = data["requested_model"], data["actual_model"]
    chosen = (
        f"[bold]{actual}[/bold] on {data['provider']}"
        if actual is not None
        else f"[bold red]none[/bold red], refused (planned {data['estimate']['model']})"
    )
    console.print(f"Chosen model:  {chosen}   (requested {requested})")
    console.print(
        f"Default:       {data['default_model']}    Recommended: {data['recommended_model']}"
    )
    line = f"Action:        [bold]{action}[/bold]"
    if would:
        line += f"   (enforcement would: {would})"
    line += f"    Mode: {data['mode']}    Task class: {data['task_class']}"
    console.print(line)
    console.print(f"Reason codes:  {', '.join(data['reason_codes']) or '—'}", highlight=False)
    estimate = data["estimate"]
    console.print(
        f"Estimate:      {estimate['input_tokens_lower']}–{estimate['input_tokens_upper']} input "
        f"tokens, ≤ {estimate['output_tokens_upper']} output; "
        f"{usd(estimate['lower_usd'])} – {usd(estimate['upper_usd'])} "
        f"({estimate['precision']}, {estimate['source'] or 'no price'})",
        highlight=False,
    )
    if data.get("estimated_saving_usd"):
        console.print(
            f"Saving:        at most {usd(data['estimated_saving_usd'])} (upper bound, at planning)"
        )
    requested_cost, actual_cost = data.get("requested_cost_usd"), data.get("actual_cost_usd")
    if requested_cost is not None and actual_cost is not None:
        console.print(
            f"On {requested}:  {usd(requested_cost)} for the same usage "
            f"(actual {usd(actual_cost)})",
            highlight=False,
        )


def _complexity(data: Mapping[str, Any]) -> None:
    complexity = data["complexity"]
    table = Table(
        title=f"Complexity {complexity['score']:.2f}", title_justify="left", header_style="bold"
    )
    table.add_column("term")
    table.add_column("contribution", justify="right")
    table.add_column("detail")
    for term in complexity["terms"]:
        table.add_row(term["name"], f"+{term['contribution']:.3f}", term["detail"])
    console.print(table)


def _candidates(data: Mapping[str, Any]) -> None:
    rows = [
        {
            **candidate,
            "verdict": "chosen"
            if candidate["chosen"]
            else ("eligible" if candidate["eligible"] else "excluded"),
            "upper": f"≤ {usd(candidate['estimate']['upper_usd'])}"
            if candidate["estimate"]
            else None,
        }
        for candidate in data["candidates"]
    ]
    print_table(
        rows,
        [
            Column("model", "candidate"),
            Column("verdict", "verdict"),
            Column("reason", "why", wrap=True),
            Column("upper", "upper bound", priority=1),
            Column("provider", "provider", priority=2),
            Column("cost_tier", "cost", priority=3),
            Column("latency_tier", "latency", priority=4),
            Column("health", "health", priority=5),
        ],
        title="Candidates",
    )


def _budgets(data: Mapping[str, Any]) -> None:
    rows = [
        {
            **evaluation,
            "policy": f"{evaluation['policy_id']} ({evaluation['scope']})",
            "limits": f"{evaluation['soft_limit'] or '—'} / {evaluation['hard_limit']}",
            "pct": f"{evaluation['percent']}%",
            "window_end": short_time(evaluation["window"]["end"]),
        }
        for evaluation in data["budget_evaluations"]
    ]
    if not rows:
        console.print("Budgets: no policy applies to this request.")
        return
    print_table(
        rows,
        [
            Column("policy", "policy"),
            Column("outcome", "outcome", wrap=True),
            Column("pct", "used", priority=1),
            Column("consumed", "consumed", priority=2),
            Column("request_amount", "this request", priority=3),
            Column("remaining", "remaining", priority=4),
            Column("limits", "soft / hard", priority=5),
            Column("member", "member", priority=6),
            Column("metric", "metric", priority=7),
            Column("window_end", "window ends", priority=8),
        ],
        title=f"Budget evaluations ({time_note()})",
    )


def _attempts(data: Mapping[str, Any]) -> None:
    """The candidates a failed-over request tried, and what each may have cost."""
    attempts = data.get("attempts") or []
    if not attempts:
        return
    rows = [
        {
            **attempt,
            "billed": "maybe" if attempt["may_have_billed"] else "no",
            "cost": usd(attempt["cost_usd"]) if attempt["cost_usd"] is not None else "—",
        }
        for attempt in attempts
    ]
    columns = [("model", "model"), ("provider", "provider"), ("outcome", "outcome")]
    columns += [("billed", "billed"), ("cost", "settled"), ("decision_id", "decision")]
    print_table(rows, columns, title="Attempts (failover)")


def render_decision(data: Mapping[str, Any]) -> None:
    """Print a decision (``PlannedDecision`` / ``DecisionDetail`` JSON) for people."""
    _headline(data)
    usage = data.get("usage")
    if usage is not None or data.get("status"):
        tokens = (
            f"{usage['input_tokens']} in / {usage['output_tokens']} out"
            if usage is not None
            else "no usage"
        )
        cost = data.get("actual_cost_usd")
        latency = data.get("latency_ms")
        # No usage means nothing was spent; only a settled call without a price is unpriced.
        if cost is not None:
            spent = f"cost {usd(cost)}"
        else:
            spent = "no cost" if usage is None else "cost unpriced"
        console.print(
            f"Outcome:       {data.get('status') or '—'}; {tokens}; {spent}"
            f"{f'; {latency:.0f} ms' if isinstance(latency, int | float) else ''}",
            highlight=False,
        )
    _attempts(data)
    route = data.get("route") or []
    if route:
        steps = ", ".join(f"{step['model']} on {step['provider']}" for step in route)
        console.print(f"Failover to:   {steps}", highlight=False)
    _complexity(data)
    _candidates(data)
    _budgets(data)
    if data["explanation"]:
        console.print("[bold]Why[/bold]")
        for sentence in data["explanation"]:
            console.print(f"  • {sentence}", highlight=False, markup=False)
