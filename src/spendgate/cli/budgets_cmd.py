"""``spendgate budgets``: list (with consumption bars), show, create, set, enable, disable,
delete, effective — all through the admin API."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from spendgate.cli.client import record_path
from spendgate.cli.output import (
    Column,
    JsonOption,
    cli_errors,
    console,
    fail,
    print_json,
    print_table,
    short_time,
    time_note,
    usd,
)

__all__ = ["budgets_app"]

budgets_app = typer.Typer(
    help="Budget policies: live consumption, create, change, enable/disable, delete.",
    no_args_is_help=True,
)

_BAR_WIDTH = 10


def bar(percent: str) -> str:
    """A text bar of ``percent`` (a decimal string) of the hard limit: ``█████░░░░░ 50.00%``."""
    try:
        value = float(percent)
    except ValueError:
        return percent
    filled = max(0, min(_BAR_WIDTH, int(value * _BAR_WIDTH / 100)))
    return f"{'█' * filled}{'░' * (_BAR_WIDTH - filled)} {percent}%"


def amount(text: str, metric: str = "") -> str:
    """A decimal string made readable for a table (``--json`` keeps the exact value):
    USD as dollars (``usd``), otherwise thousands grouped, at most six significant digits
    below 1,000."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text
    if metric == "usd":
        return usd(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.6g}" if value else "0"


def _scope(budget: dict[str, Any]) -> str:
    scope = budget["scope"]
    return f"{scope['kind']}:{scope['id']}"


def _interval(budget: dict[str, Any]) -> str:
    interval = budget["interval"]
    if interval.get("duration"):
        return f"rolling {interval['duration']}"
    tz = interval.get("timezone")
    return interval["kind"] if tz in (None, "UTC") else f"{interval['kind']} ({tz})"


def _rows(budgets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per budget and member in its current window (a budget with none: one row)."""
    rows: list[dict[str, Any]] = []
    for budget in budgets:
        metric = budget["metric"]
        base = {
            "id": budget["id"],
            "source": budget["source"] + ("" if budget["enabled"] else " (off)"),
            "scope": _scope(budget),
            "measures": f"{budget['metric']} · {_interval(budget)}",
            "limits": f"{amount(budget.get('soft_limit') or '—', metric)} / "
            f"{amount(budget['hard_limit'], metric)}",
            "actions": f"{budget['soft_action']} / {budget['hard_action']}",
        }
        used = budget.get("consumption") or []
        if not used:
            rows.append({**base, "member": "—", "used": "no usage in this window"})
        for item in used:
            rows.append(
                {
                    **base,
                    "member": item["member"],
                    "consumed": amount(item["consumed"], metric),
                    "remaining": amount(item["remaining"], metric),
                    "used": bar(item["percent"]),
                    "ends": short_time(item["window"]["end"]),
                }
            )
    return rows


_COLUMNS = [
    Column("id", "budget"),
    Column("member", "member", priority=1),
    Column("used", "used of hard", priority=2),
    Column("consumed", "consumed", priority=3),
    Column("remaining", "remaining", priority=4),
    Column("limits", "soft / hard", priority=5),
    Column("scope", "scope", priority=6),
    Column("ends", "window ends", priority=7),
    Column("measures", "measures", priority=8),
    Column("actions", "actions", priority=9),
    Column("source", "source", priority=10),
]


def _print_budgets(budgets: list[dict[str, Any]], title: str) -> None:
    print_table(_rows(budgets), _COLUMNS, title=f"{title} ({time_note()})")


def _print_one(budget: dict[str, Any]) -> None:
    details = [
        ("id", budget["id"]),
        ("source", budget["source"] + (" (read-only)" if budget["source"] == "config" else "")),
        ("enabled", "yes" if budget["enabled"] else "no"),
        ("scope", _scope(budget)),
        ("metric", budget["metric"]),
        ("interval", _interval(budget)),
        ("hard limit", f"{budget['hard_limit']} → {budget['hard_action']}"),
        ("soft limit", f"{budget.get('soft_limit') or '—'} → {budget['soft_action']}"),
        ("degrade to", budget.get("degrade_to") or "—"),
        ("alert at", ", ".join(budget["alert_thresholds"])),
        ("filters", ", ".join(f"{k}={','.join(v)}" for k, v in budget["filters"].items() if v)
         or "—"),
        ("mode", budget.get("mode") or "—"),
        ("mode override", budget.get("routing_mode_override") or "—"),
    ]  # fmt: skip
    width = max(len(label) for label, _ in details)
    for label, value in details:
        console.print(f"[bold]{label.ljust(width)}[/bold]  {value}", highlight=False)
    _print_budgets([budget], "consumption in the current window")


@budgets_app.command("list")
def list_command(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Every budget with its consumption in the current window."""
    from spendgate.cli.client import client_from

    with cli_errors():
        answer = client_from(ctx).get("/budgets")
    if json_output:
        print_json(answer)
    else:
        _print_budgets(answer["data"], "budgets")
        for invalid in answer.get("invalid", []):
            console.print(
                f"[bold red]invalid[/] {escape(invalid['id'])} (not applied): "
                f"{escape(invalid['problem'])} — delete it and create it again",
                highlight=False,
                soft_wrap=True,
            )


@budgets_app.command("show")
def show_command(
    ctx: typer.Context,
    budget_id: Annotated[str, typer.Argument(help="The budget's id.")],
    json_output: JsonOption = False,
) -> None:
    """One budget in full, with its consumption."""
    from spendgate.cli.client import client_from

    with cli_errors():
        answer = client_from(ctx).get(record_path("budgets", budget_id))
    if json_output:
        print_json(answer)
    else:
        _print_one(answer)


def _spec_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror}")
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            fail(f"{path}: not valid JSON ({error})")
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        fail(f"{path}: not valid YAML ({' '.join(str(error).split())})")


def _options_spec(
    *,
    budget_id: str | None,
    scope: str | None,
    metric: str | None,
    interval: str | None,
    duration: str | None,
    timezone: str | None,
    hard_limit: str | None,
    soft_limit: str | None,
    hard_action: str | None,
    soft_action: str | None,
    degrade_to: str | None,
    thresholds: str | None,
    models: str | None,
    mode: str | None,
) -> dict[str, Any]:
    """The fields given on the command line, shaped like a ``budgets`` entry."""
    spec: dict[str, Any] = {}
    if budget_id is not None:
        spec["id"] = budget_id
    if scope is not None:
        kind, _, member = scope.partition(":")
        spec["scope"] = {"kind": kind} if kind == "global" else {"kind": kind, "id": member}
    if metric is not None:
        spec["metric"] = metric
    if interval is not None or duration is not None or timezone is not None:
        shape: dict[str, Any] = {"kind": interval or ("rolling" if duration else "daily")}
        if duration is not None:
            shape["duration"] = duration
        if timezone is not None:
            shape["timezone"] = timezone
        spec["interval"] = shape
    for key, value in (
        ("hard_limit", hard_limit),
        ("soft_limit", soft_limit),
        ("hard_action", hard_action),
        ("soft_action", soft_action),
        ("degrade_to", degrade_to),
        ("mode", mode),
    ):
        if value is not None:
            spec[key] = value
    if thresholds is not None:
        spec["alert_thresholds"] = [t.strip() for t in thresholds.split(",") if t.strip()]
    if models is not None:
        spec["filters"] = {"models": [m.strip() for m in models.split(",") if m.strip()]}
    return spec


Scope = Annotated[
    str | None, typer.Option("--scope", help="kind:id, e.g. project:acme, principal:* or global.")
]
Metric = Annotated[str | None, typer.Option("--metric", help="usd, tokens or requests.")]
IntervalOpt = Annotated[
    str | None, typer.Option("--interval", help="hourly, daily, weekly, monthly or rolling.")
]
Duration = Annotated[str | None, typer.Option("--duration", help="Rolling window, e.g. 7d.")]
Timezone = Annotated[str | None, typer.Option("--timezone", help="IANA zone of the window.")]
Hard = Annotated[str | None, typer.Option("--hard-limit", help="The hard limit (a number).")]
Soft = Annotated[str | None, typer.Option("--soft-limit", help="The soft limit (a number).")]
HardAction = Annotated[
    str | None,
    typer.Option("--hard-action", help="block, require_approval, degrade or alert."),
]
SoftAction = Annotated[str | None, typer.Option("--soft-action", help="alert or degrade.")]
DegradeTo = Annotated[str | None, typer.Option("--degrade-to", help="Model to degrade to.")]
Thresholds = Annotated[
    str | None, typer.Option("--alert-thresholds", help="Fractions, e.g. 0.5,0.8,0.95.")
]
Models = Annotated[str | None, typer.Option("--models", help="Only these models (comma list).")]
Mode = Annotated[str | None, typer.Option("--mode", help="suggest, dry_run or enforced.")]


@budgets_app.command("create")
def create_command(
    ctx: typer.Context,
    budget_id: Annotated[str | None, typer.Option("--id", help="The new budget's id.")] = None,
    scope: Scope = None,
    metric: Metric = None,
    interval: IntervalOpt = None,
    duration: Duration = None,
    timezone: Timezone = None,
    hard_limit: Hard = None,
    soft_limit: Soft = None,
    hard_action: HardAction = None,
    soft_action: SoftAction = None,
    degrade_to: DegradeTo = None,
    alert_thresholds: Thresholds = None,
    models: Models = None,
    mode: Mode = None,
    spec_file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="A budget as YAML or JSON (a config `budgets` entry)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create a budget from options, or from --file (options then override the file)."""
    from spendgate.cli.client import client_from

    spec: Any = _spec_file(spec_file) if spec_file is not None else {}
    if not isinstance(spec, dict):
        fail("the budget file must hold one mapping (a config `budgets` entry)")
    spec.update(
        _options_spec(
            budget_id=budget_id,
            scope=scope,
            metric=metric,
            interval=interval,
            duration=duration,
            timezone=timezone,
            hard_limit=hard_limit,
            soft_limit=soft_limit,
            hard_action=hard_action,
            soft_action=soft_action,
            degrade_to=degrade_to,
            thresholds=alert_thresholds,
            models=models,
            mode=mode,
        )
    )
    with cli_errors():
        answer = client_from(ctx).post("/budgets", json=spec)
    if json_output:
        print_json(answer)
    else:
        console.print(f"Created budget [bold]{answer['id']}[/bold].", highlight=False)
        _print_budgets([answer], "consumption in the current window")


@budgets_app.command("set")
def set_command(
    ctx: typer.Context,
    budget_id: Annotated[str, typer.Argument(help="The budget to change.")],
    scope: Scope = None,
    hard_limit: Hard = None,
    soft_limit: Soft = None,
    hard_action: HardAction = None,
    soft_action: SoftAction = None,
    degrade_to: DegradeTo = None,
    alert_thresholds: Thresholds = None,
    models: Models = None,
    mode: Mode = None,
    json_output: JsonOption = False,
) -> None:
    """Change the given fields of a runtime budget (metric and interval cannot change)."""
    from spendgate.cli.client import client_from

    changes = _options_spec(
        budget_id=None, scope=scope, metric=None, interval=None, duration=None, timezone=None,
        hard_limit=hard_limit, soft_limit=soft_limit, hard_action=hard_action,
        soft_action=soft_action, degrade_to=degrade_to, thresholds=alert_thresholds,
        models=models, mode=mode,
    )  # fmt: skip
    if not changes:
        fail("nothing to change: give at least one option (see --help)")
    with cli_errors():
        answer = client_from(ctx).put(record_path("budgets", budget_id), json=changes)
    if json_output:
        print_json(answer)
    else:
        console.print(f"Updated budget [bold]{answer['id']}[/bold].", highlight=False)
        _print_budgets([answer], "consumption in the current window")


def _toggle(ctx: typer.Context, budget_id: str, action: str, json_output: bool) -> None:
    from spendgate.cli.client import client_from

    with cli_errors():
        answer = client_from(ctx).post(record_path("budgets", budget_id, action))
    if json_output:
        print_json(answer)
    else:
        console.print(f"Budget [bold]{answer['id']}[/bold] {action}d.", highlight=False)


@budgets_app.command("enable")
def enable_command(
    ctx: typer.Context,
    budget_id: Annotated[str, typer.Argument(help="The budget to enable.")],
    json_output: JsonOption = False,
) -> None:
    """Enable a runtime budget."""
    _toggle(ctx, budget_id, "enable", json_output)


@budgets_app.command("disable")
def disable_command(
    ctx: typer.Context,
    budget_id: Annotated[str, typer.Argument(help="The budget to disable.")],
    json_output: JsonOption = False,
) -> None:
    """Disable a runtime budget (it stops applying at once; its counters are kept)."""
    _toggle(ctx, budget_id, "disable", json_output)


@budgets_app.command("delete")
def delete_command(
    ctx: typer.Context,
    budget_id: Annotated[str, typer.Argument(help="The budget to delete.")],
) -> None:
    """Delete a runtime budget."""
    from spendgate.cli.client import client_from

    with cli_errors():
        client_from(ctx).delete(record_path("budgets", budget_id))
    console.print(f"Deleted budget [bold]{budget_id}[/bold].", highlight=False)


def _opt(help_text: str) -> Any:
    return typer.Option(help=help_text)


@budgets_app.command("effective")
def effective_command(
    ctx: typer.Context,
    project: Annotated[str | None, _opt("Project id.")] = None,
    principal: Annotated[str | None, _opt("Principal (user) id.")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="API key id.")] = None,
    agent: Annotated[str | None, _opt("Agent id.")] = None,
    session: Annotated[str | None, _opt("Session id.")] = None,
    model: Annotated[str | None, _opt("Model id.")] = None,
    provider: Annotated[str | None, _opt("Provider id.")] = None,
    task_class: Annotated[str | None, typer.Option("--task-class", help="Task class.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Every budget that applies to requests of these scopes, with their consumption."""
    from spendgate.cli.client import client_from

    params = {
        "project": project, "principal": principal, "api_key": api_key, "agent": agent,
        "session": session, "model": model, "provider": provider, "task_class": task_class,
    }  # fmt: skip
    with cli_errors():
        answer = client_from(ctx).get(
            "/budgets/effective", params={k: v for k, v in params.items() if v is not None}
        )
    if json_output:
        print_json(answer)
    else:
        _print_budgets(answer["data"], "budgets that apply")
