"""The ``spendgate`` command line (Typer + Rich).

Each command group lives in its own module under ``spendgate.cli`` and is registered here.
"""

from __future__ import annotations

from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from spendgate.cli.alerts_cmd import alerts_app
from spendgate.cli.approvals_cmd import approvals_app
from spendgate.cli.budgets_cmd import budgets_app
from spendgate.cli.client import DEFAULT_URL, Remote
from spendgate.cli.config_cmd import config_app
from spendgate.cli.db_cmd import db_app
from spendgate.cli.decisions_cmd import decisions_app
from spendgate.cli.demo_cmd import demo_command
from spendgate.cli.keys_cmd import keys_app
from spendgate.cli.ledger_cmd import ledger_app
from spendgate.cli.mock_cmd import mock_upstream_command
from spendgate.cli.models_cmd import models_app
from spendgate.cli.output import use_utc
from spendgate.cli.pricing_cmd import pricing_app
from spendgate.cli.rate_limits_cmd import rate_limits_app
from spendgate.cli.serve_cmd import serve_command
from spendgate.cli.usage_cmd import usage_app

__all__ = ["app", "main"]


class TimeZoneChoice(StrEnum):
    LOCAL = "local"
    UTC = "utc"


app = typer.Typer(
    name="spendgate",
    help="Usage-governance gateway for LLM traffic: budgets, smart routing, approvals, alerts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str,
        typer.Option(
            "--url",
            envvar="SPENDGATE_URL",
            help="The spendgate gateway the admin commands talk to.",
        ),
    ] = DEFAULT_URL,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="SPENDGATE_ADMIN_TOKEN",
            help="Admin token (or an API key) for the admin API.",
            show_default=False,
        ),
    ] = None,
    time: Annotated[
        TimeZoneChoice,
        typer.Option(
            "--time",
            envvar="SPENDGATE_TIME",
            case_sensitive=False,
            help="Print times in local time or in UTC (said once above each table).",
        ),
    ] = TimeZoneChoice.LOCAL,
    utc: Annotated[
        bool, typer.Option("--utc", metavar="", help="Short for --time utc.", show_default=False)
    ] = False,
) -> None:
    """Usage-governance gateway for LLM traffic: budgets, smart routing, approvals, alerts.

    The admin commands (models, decisions, budgets, rate-limits, usage, pricing, keys) talk
    to a running gateway's admin API at --url; they never open its database.
    """
    ctx.obj = Remote(url=url, token=token or None)
    use_utc(utc or time is TimeZoneChoice.UTC)


app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(ledger_app, name="ledger")
app.add_typer(models_app, name="models")
app.add_typer(decisions_app, name="decisions")
app.add_typer(budgets_app, name="budgets")
app.add_typer(rate_limits_app, name="rate-limits")
app.add_typer(pricing_app, name="pricing")
app.add_typer(keys_app, name="keys")
app.add_typer(approvals_app, name="approvals")
app.add_typer(alerts_app, name="alerts")
app.add_typer(usage_app, name="usage")
app.command("serve")(serve_command)
app.command("demo")(demo_command)
app.command("mock-upstream")(mock_upstream_command)


@app.command("version")
def version_command() -> None:
    """Print the installed spendgate version."""
    try:
        installed = version("spendgate")
    except PackageNotFoundError:  # running from a source tree without installing
        installed = "unknown"
    typer.echo(f"spendgate {installed}")


def main() -> None:
    """Console-script entry point (``spendgate = spendgate.cli:main``)."""
    app()
