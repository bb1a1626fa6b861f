"""``spendgate pricing``: list, set, unset, import — through the admin API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

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
    usd_places,
)

__all__ = ["pricing_app"]

pricing_app = typer.Typer(
    help="Prices (USD per 1M tokens): the catalog, config rows and runtime overrides.",
    no_args_is_help=True,
)

_PRICES = ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "per_request")
_COLUMNS = [
    Column("model", "model"),
    Column("input_per_mtok", "input /1M", priority=1),
    Column("output_per_mtok", "output /1M", priority=2),
    Column("cached_input_per_mtok", "cached /1M", priority=3),
    Column("id", "id", priority=4),
    Column("in_effect", "in effect", priority=5),
    Column("source", "source", priority=6),
    Column("per_request", "per request", priority=7),
    Column("effective_from", "from", priority=8),
    Column("effective_to", "to", priority=9),
    Column("precision", "precision", priority=10),
]


_FIELD_NAMES = {
    "input_per_mtok": "input price",
    "output_per_mtok": "output price",
    "cached_input_per_mtok": "cached input price",
    "per_request": "per-request fee",
}


def _print_rows(rows: list[dict[str, Any]], title: str) -> None:
    """Prices with the same decimals down each column; dates in the chosen zone."""
    places = {key: usd_places(row[key] for row in rows if row[key]) for key in _PRICES}
    shown = [
        {
            **row,
            **{key: usd(row[key], places[key]) for key in _PRICES if row[key] is not None},
            "effective_from": short_time(row["effective_from"]),
            "effective_to": short_time(row["effective_to"]),
        }
        for row in rows
    ]
    dated = any(row["effective_from"] or row["effective_to"] for row in rows)
    print_table(shown, _COLUMNS, title=f"{title} ({time_note()})" if dated else title)


@pricing_app.command("list")
def list_command(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only this model's rows.")] = None,
    all_models: Annotated[
        bool, typer.Option("--all", metavar="", help="Every model the catalog prices.")
    ] = False,
    search: Annotated[
        str | None, typer.Option(help="Only models whose id contains this (any case).")
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option(
            help="Only models of this provider: a configured provider's id, or the "
            "catalog's (openai, anthropic, …)."
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(min=0, help="Show at most this many rows (0: all); --json shows all."),
    ] = 200,
    json_output: JsonOption = False,
) -> None:
    """Price rows of the configured models and every override, and the catalog's age."""
    from spendgate.cli.client import client_from

    params: dict[str, Any] = {
        name: value
        for name, value in (("model", model), ("search", search), ("provider", provider))
        if value is not None
    }
    if all_models:
        params["all"] = True
    with cli_errors():
        answer = client_from(ctx).get("/pricing", params=params)
    if json_output:
        print_json(answer)
        return
    rows = answer["data"]
    shown = rows[:limit] if limit else rows
    _print_rows(shown, "prices (USD per 1M tokens)")
    if len(shown) < len(rows):
        # The whole catalog is ~20,000 rows: a table of it takes seconds and nobody reads it.
        console.print(
            f"{len(rows) - len(shown):,} more rows not shown: narrow with --search or "
            "--provider, raise --limit, or use --json.",
            highlight=False,
        )
    catalog = answer["catalog"]
    console.print(
        f"catalog: {catalog['package']} {catalog['version']}, prices last checked "
        f"{short_time(catalog['checked_at'])[:10]} ({catalog['age_days']} days ago)",
        highlight=False,
    )


@pricing_app.command("set")
def set_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model to price.")],
    input_price: Annotated[
        str | None, typer.Option("--input", help="USD per 1M input tokens.")
    ] = None,
    output_price: Annotated[
        str | None, typer.Option("--output", help="USD per 1M output tokens.")
    ] = None,
    cached_input: Annotated[
        str | None, typer.Option("--cached-input", help="USD per 1M cached input tokens.")
    ] = None,
    per_request: Annotated[
        str | None, typer.Option("--per-request", help="Fixed USD fee per request.")
    ] = None,
    effective_from: Annotated[
        str | None, typer.Option("--from", help="Effective from (ISO date or date-time).")
    ] = None,
    effective_to: Annotated[
        str | None, typer.Option("--to", help="Effective until (ISO date or date-time).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Override a model's price (it wins over the catalog and the config file). Prices
    not given are kept from the row it overrides, and the answer says which."""
    from spendgate.cli.client import client_from

    row: dict[str, Any] = {"model": model}
    for key, value in (
        ("input_per_mtok", input_price),
        ("output_per_mtok", output_price),
        ("cached_input_per_mtok", cached_input),
        ("per_request", per_request),
        ("effective_from", effective_from),
        ("effective_to", effective_to),
    ):
        if value is not None:
            row[key] = value
    with cli_errors():
        answer = client_from(ctx).post("/pricing", json=row)
    if json_output:
        print_json(answer)
    else:
        console.print(f"Set price {answer['id']} for {answer['model']}.", highlight=False)
        if answer["kept"]:
            source = answer["kept_from"]
            origin = source["id"] or f"the {source['source']} row"
            kept = ", ".join(_FIELD_NAMES[field] for field in answer["kept"])
            console.print(f"Kept from {origin}: {kept}.", highlight=False)
        _print_rows([answer], "new price row")


@pricing_app.command("unset")
def unset_command(
    ctx: typer.Context,
    price_id: Annotated[str, typer.Argument(help="The override's id, e.g. api-3.")],
) -> None:
    """Delete a runtime price override (the catalog or config price applies again)."""
    from spendgate.cli.client import client_from, record_path

    with cli_errors():
        client_from(ctx).delete(record_path("pricing", price_id))
    console.print(f"Deleted price {price_id}.", highlight=False)


@pricing_app.command("import")
def import_command(
    ctx: typer.Context,
    sheet: Annotated[Path, typer.Argument(help="A .csv or .json price sheet.")],
    sheet_format: Annotated[
        str | None, typer.Option("--format", help="csv or json (default: from the suffix).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Import a price sheet: every row is validated first, then all are stored (or none)."""
    from spendgate.cli.client import client_from

    kind = sheet_format or sheet.suffix.lower().lstrip(".")
    if kind not in ("csv", "json"):
        fail(f"cannot tell the format of {sheet}: use a .csv or .json file, or --format")
    try:
        content = sheet.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read {sheet}: {error}")
    with cli_errors():
        answer = client_from(ctx).post("/pricing/import", json={"format": kind, "content": content})
    if json_output:
        print_json(answer)
    else:
        console.print(f"Imported {answer['imported']} price rows.", highlight=False)
        _print_rows(answer["data"], "imported rows")
