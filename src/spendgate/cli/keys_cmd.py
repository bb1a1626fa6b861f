"""``spendgate keys``: create, list, revoke, rotate — through the admin API."""

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
)

__all__ = ["keys_app"]

keys_app = typer.Typer(
    help="API keys: create (secret shown once), list, revoke, rotate.", no_args_is_help=True
)

_COLUMNS = [
    Column("id", "id"),
    Column("principal", "principal", priority=1),
    Column("project", "project", priority=2),
    Column("active", "active", priority=3),
    Column("permissions", "permissions", priority=4),
    Column("models", "models", priority=5, wrap=True),
    Column("created_at", "created", priority=6),
    Column("revoked_at", "revoked", priority=7),
    Column("source", "source", priority=8),
]


def _show_secret(answer: dict[str, Any], what: str) -> None:
    console.print(f"{what} key [bold]{answer['id']}[/bold]. Its secret (shown only now):")
    # Plain print: the secret must come out verbatim on a line of its own, easy to copy.
    typer.echo(answer["secret"])
    console.print(
        "[yellow]Store it now: spendgate keeps only a hash and cannot show it again.[/yellow]"
    )


def _split(values: str | None) -> list[str] | None:
    return None if values is None else [v.strip() for v in values.split(",") if v.strip()]


@keys_app.command("create")
def create_command(
    ctx: typer.Context,
    principal: Annotated[str | None, typer.Option(help="Who uses the key.")] = None,
    project: Annotated[str | None, typer.Option(help="The key's project.")] = None,
    key_id: Annotated[str | None, typer.Option("--id", help="Key id (default: generated).")] = None,
    permissions: Annotated[
        str | None,
        typer.Option(help="Comma list: admin, approver, override_routing_mode."),
    ] = None,
    models: Annotated[
        str | None, typer.Option(help="Comma list of the models it may use (default: all).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create an API key; its secret is printed once."""
    from spendgate.cli.client import client_from

    body: dict[str, Any] = {"permissions": _split(permissions) or []}
    for key, value in (("id", key_id), ("principal", principal), ("project", project)):
        if value is not None:
            body[key] = value
    if models is not None:
        body["models"] = _split(models)
    with cli_errors():
        answer = client_from(ctx).post("/keys", json=body)
    if json_output:
        print_json(answer)
    else:
        _show_secret(answer, "Created")


@keys_app.command("list")
def list_command(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Every key (config keys read-only); never their secrets."""
    from spendgate.cli.client import client_from

    with cli_errors():
        answer = client_from(ctx).get("/keys")
    if json_output:
        print_json(answer)
    else:
        rows = [
            {
                **key,
                "created_at": short_time(key["created_at"]),
                "revoked_at": short_time(key["revoked_at"]),
            }
            for key in answer["data"]
        ]
        print_table(rows, _COLUMNS, title=f"API keys ({time_note()})")


@keys_app.command("revoke")
def revoke_command(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key to revoke.")],
    json_output: JsonOption = False,
) -> None:
    """Revoke a key: it stops authenticating at once."""
    from spendgate.cli.client import client_from

    with cli_errors():
        answer = client_from(ctx).delete(record_path("keys", key_id))
    if json_output:
        print_json(answer)
    else:
        console.print(f"Revoked key [bold]{answer['id']}[/bold].", highlight=False)


@keys_app.command("rotate")
def rotate_command(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key to rotate.")],
    json_output: JsonOption = False,
) -> None:
    """Give a key a new secret (printed once); the old secret stops working at once."""
    from spendgate.cli.client import client_from

    with cli_errors():
        answer = client_from(ctx).post(record_path("keys", key_id, "rotate"))
    if json_output:
        print_json(answer)
    else:
        _show_secret(answer, "Rotated")
