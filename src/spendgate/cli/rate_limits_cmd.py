"""``spendgate rate-limits``: list, create, delete — through the admin API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from spendgate.cli.client import record_path
from spendgate.cli.output import JsonOption, cli_errors, console, print_json, print_table

__all__ = ["rate_limits_app"]

rate_limits_app = typer.Typer(
    help="Rate limits: requests and tokens per minute per key, principal, project or model.",
    no_args_is_help=True,
)


def _row(limit: dict[str, Any]) -> dict[str, Any]:
    scope = limit["scope"]
    return {
        "id": limit["id"],
        "scope": f"{scope['kind']}:{scope['id']}",
        "rpm": "—" if limit.get("requests_per_minute") is None else limit["requests_per_minute"],
        "tpm": "—" if limit.get("tokens_per_minute") is None else limit["tokens_per_minute"],
        "models": ", ".join(limit.get("models") or ()) or "any",
        "source": limit["source"],
    }


_COLUMNS = [
    ("id", "rate limit"),
    ("scope", "scope"),
    ("rpm", "requests/min"),
    ("tpm", "tokens/min"),
    ("models", "models"),
    ("source", "source"),
]


@rate_limits_app.command("list")
def list_command(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Every rate limit, the config file's and the runtime ones."""
    from spendgate.cli.client import client_from

    with cli_errors():
        answer = client_from(ctx).get("/rate-limits")
    if json_output:
        print_json(answer)
    else:
        print_table([_row(limit) for limit in answer["data"]], _COLUMNS, title="rate limits")


@rate_limits_app.command("create")
def create_command(
    ctx: typer.Context,
    limit_id: Annotated[str, typer.Option("--id", help="The new rate limit's id.")],
    scope: Annotated[
        str,
        typer.Option(
            "--scope",
            help="kind:id with kind api_key, principal, project or model (id * for each).",
        ),
    ],
    rpm: Annotated[
        int | None, typer.Option("--requests-per-minute", "--rpm", help="Requests per minute.")
    ] = None,
    tpm: Annotated[
        int | None, typer.Option("--tokens-per-minute", "--tpm", help="Tokens per minute.")
    ] = None,
    models: Annotated[
        str | None, typer.Option("--models", help="Only these models (comma list).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create a runtime rate limit (applies at once)."""
    from spendgate.cli.client import client_from

    kind, _, member = scope.partition(":")
    spec: dict[str, Any] = {"id": limit_id, "scope": {"kind": kind, "id": member}}
    if rpm is not None:
        spec["requests_per_minute"] = rpm
    if tpm is not None:
        spec["tokens_per_minute"] = tpm
    if models is not None:
        spec["models"] = [model.strip() for model in models.split(",") if model.strip()]
    with cli_errors():
        created = client_from(ctx).post("/rate-limits", json=spec)
    if json_output:
        print_json(created)
    else:
        console.print(f"Created rate limit [bold]{created['id']}[/bold].", highlight=False)


@rate_limits_app.command("delete")
def delete_command(
    ctx: typer.Context,
    limit_id: Annotated[str, typer.Argument(help="The rate limit to delete.")],
) -> None:
    """Delete a runtime rate limit."""
    from spendgate.cli.client import client_from

    with cli_errors():
        client_from(ctx).delete(record_path("rate-limits", limit_id))
    console.print(f"Deleted rate limit [bold]{limit_id}[/bold].", highlight=False)
