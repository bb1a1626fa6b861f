"""``spendgate models status|list|explain|test-connection``: providers and models, through the
daemon's admin API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

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
    usd_places,
)

__all__ = ["models_app"]

models_app = typer.Typer(
    help="Providers, models, health, routing explanations and connection tests.",
    no_args_is_help=True,
)

_TASK_CLASSES = (
    "primary_interactive, background_automation, auxiliary_summary, auxiliary_recall, "
    "auxiliary_classification, auxiliary_extraction, auxiliary_vision"
)


def _credential(provider: dict[str, Any]) -> str:
    env = provider["credential_env"]
    if env is None:
        return "not needed"
    return f"{env} ({'set' if provider['credential_present'] else 'MISSING'})"


def _health(provider: dict[str, Any]) -> str:
    health = provider["health"]
    text = f"{health['state']} / circuit {health['circuit']}"
    if health["reason"]:
        text += f": {health['reason']}"
    if health["retry_at"]:
        text += f" (until {short_time(health['retry_at'])}, {time_note()})"
    return text


def _served_by(model: dict[str, Any]) -> str:
    """A model's provider, or each of its deployments with its weight."""
    deployments = model.get("deployments") or []
    if len(deployments) <= 1:
        return str(model["provider"])
    return ", ".join(f"{d['provider']} (weight {d['weight']})" for d in deployments)


@models_app.command("status")
def status_command(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Providers (credential set?, health, circuit and why), default model, routing switches."""
    from spendgate.cli.client import client_from

    with cli_errors():
        data = client_from(ctx).get("/models/status")
    if json_output:
        print_json(data)
        return
    on = {True: "on", False: "off"}
    console.print(
        f"Default model: [bold]{data['default_model']}[/bold]   mode: {data['routing_mode']}   "
        f"smart routing: {on[data['smart_routing']]}   auxiliary routing: "
        f"{on[data['auxiliary_routing']]}   failover: {on[data['failover']]}"
    )
    rows = [
        {
            **provider,
            "credential": _credential(provider),
            "state": _health(provider),
            "error_rate": f"{provider['health']['error_rate']:.0%}",
            "p95": provider["health"]["p95_latency_ms"],
        }
        for provider in data["providers"]
    ]
    print_table(
        rows,
        [
            Column("id", "provider"),
            Column("state", "health", priority=1, wrap=True),
            Column("credential", "credential", priority=2),
            Column("error_rate", "errors", priority=3),
            Column("p95", "p95 ms", priority=4),
            Column("kind", "kind", priority=5),
            Column("models", "models", priority=6, wrap=True),
            Column("base_url", "base URL", priority=7),
        ],
        title="Providers",
    )
    deployments = [
        {**deployment, "model": model["id"]}
        for model in data["models"]
        for deployment in model["deployments"]
    ]
    print_table(
        deployments,
        [
            Column("model", "model"),
            Column("provider", "provider"),
            Column("weight", "weight", priority=1),
            Column("health", "health", priority=2),
            Column("circuit", "circuit", priority=3),
            Column("upstream_id", "upstream id", priority=4),
        ],
        title="Deployments (a request picks a healthy one by weight; the others are its failover)",
    )


@models_app.command("list")
def list_command(
    ctx: typer.Context,
    discovered: Annotated[
        bool, typer.Option("--discovered", metavar="", help="Include models found by discovery.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Configured models: capabilities, context, tiers and prices (USD per 1M tokens)."""
    from spendgate.cli.client import client_from

    with cli_errors():
        data = client_from(ctx).get("/models", params={"discovered": discovered})
    if json_output:
        print_json(data)
        return
    prices = [model["price"] for model in data["data"] if model["price"]]
    places_in = usd_places(price["input_per_mtok"] for price in prices)
    places_out = usd_places(price["output_per_mtok"] for price in prices)
    rows = []
    for model in data["data"]:
        price = model["price"]
        rows.append(
            {
                **model,
                "input": usd(price["input_per_mtok"], places_in) if price else "unpriced",
                "output": usd(price["output_per_mtok"], places_out) if price else None,
                "price_source": f"{price['source']}, {price['precision']}" if price else None,
                "provider": _served_by(model),
            }
        )
    columns = [
        Column("id", "model"),
        Column("provider", "provider", priority=1, wrap=True),
        Column("input", "in $/1M", priority=2),
        Column("output", "out $/1M", priority=3),
        Column("context_window", "context", priority=4),
        Column("max_output_tokens", "max output", priority=5),
        Column("cost_tier", "cost tier", priority=6),
        Column("latency_tier", "latency tier", priority=7),
        Column("capabilities", "capabilities", priority=8, wrap=True),
        Column("price_source", "price", priority=9),
        Column("enabled", "enabled", priority=10),
    ]
    if discovered:
        columns += [
            Column("configured", "configured", priority=11),
            Column("discovered", "discovered", priority=12),
        ]
    print_table(rows, columns, title="Models")


@models_app.command("explain")
def explain_command(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="The user message to route.")],
    model: Annotated[
        str | None, typer.Option(help="Requested model (default: the gateway's default).")
    ] = None,
    project: Annotated[str | None, typer.Option(help="Project scope.")] = None,
    principal: Annotated[str | None, typer.Option(help="Principal (user) scope.")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="API key id scope.")] = None,
    agent: Annotated[str | None, typer.Option(help="Agent scope.")] = None,
    session: Annotated[str | None, typer.Option(help="Session scope.")] = None,
    task_class: Annotated[
        str | None, typer.Option("--task-class", help=f"One of: {_TASK_CLASSES}.")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", min=1, help="Output token limit.")
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(help="Routing mode the request asks for (suggest|dry_run|enforced)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Show how the gateway would route PROMPT, and why — without calling any provider or
    spending budget."""
    from spendgate.cli.client import client_from
    from spendgate.cli.decision_render import render_decision

    with cli_errors():
        client = client_from(ctx)
        if model is None:
            model = str(client.get("/models/status")["default_model"])
        request: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
        }
        if max_tokens is not None:
            request["max_tokens"] = max_tokens
        body: dict[str, Any] = {"request": request, "protocol": "openai"}
        optional = {
            "project": project,
            "principal": principal,
            "api_key": api_key,
            "agent": agent,
            "session": session,
            "task_class": task_class,
            "routing_mode": mode,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        data = client.post("/explain", json=body)
    if json_output:
        print_json(data)
        return
    render_decision(data)


@models_app.command("test-connection")
def connection_command(
    ctx: typer.Context,
    provider: Annotated[
        str | None, typer.Argument(help="Provider id (default: every provider).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Per provider: reachable?, credential accepted?, models listed, latency. Exits 1 if any
    provider failed."""
    from spendgate.cli.client import client_from

    with cli_errors():
        client = client_from(ctx)
        label = f"provider {provider}" if provider else "every provider"
        with console.status(f"Testing {label}…", spinner="dots"):
            data = client.post("/models/test-connection", params={"provider": provider})
    if json_output:
        print_json(data)
    else:
        credential = {True: "accepted", False: "refused", None: "unknown"}
        rows = [
            {
                **test,
                "result": "ok" if test["ok"] else "FAILED",
                "credential": credential[test["credential_accepted"]],
            }
            for test in data["data"]
        ]
        print_table(
            rows,
            [
                Column("provider", "provider"),
                Column("result", "result"),
                Column("error", "error", priority=1, wrap=True),
                Column("credential", "credential", priority=2),
                Column("status_code", "HTTP", priority=3),
                Column("model_count", "models", priority=4),
                Column("latency_ms", "latency ms", priority=5),
                Column("kind", "kind", priority=6),
            ],
            title="Connection test",
        )
    if not data["ok"]:
        raise typer.Exit(1)
