"""The ``spendgate`` command line (Typer + Rich).

Each command group lives in its own module under ``spendgate.cli`` and is registered here.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import typer

from spendgate.cli.config_cmd import config_app
from spendgate.cli.demo_cmd import demo_command
from spendgate.cli.mock_cmd import mock_upstream_command
from spendgate.cli.serve_cmd import serve_command

__all__ = ["app", "main"]

app = typer.Typer(
    name="spendgate",
    help="Usage-governance gateway for LLM traffic: budgets, smart routing, approvals, alerts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(config_app, name="config")
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
