"""The ``spendgate`` command line (Typer + Rich).

Each command or command group lives in its own module under ``spendgate.cli``, named here and
imported when it is run (or listed by ``--help``): ``spendgate serve`` loads none of the
admin commands nor Rich (~5 MB of the gateway's memory).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from enum import StrEnum
from importlib import import_module
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from spendgate.cli.client import DEFAULT_URL, Remote
from spendgate.cli.clock import use_utc

if TYPE_CHECKING:  # the click that Typer bundles (a private module: only its types are used)
    from typer._click import Command

__all__ = ["app", "main"]


class TimeZoneChoice(StrEnum):
    LOCAL = "local"
    UTC = "utc"


# Command → where it is defined: a Typer app of subcommands, or a command function. In the
# order --help lists them (Typer's: commands, then groups).
_COMMANDS: dict[str, str] = {
    "serve": "spendgate.cli.serve_cmd:serve_command",
    "demo": "spendgate.cli.demo_cmd:demo_command",
    "mock-upstream": "spendgate.cli.mock_cmd:mock_upstream_command",
    "version": "",  # defined below
    "config": "spendgate.cli.config_cmd:config_app",
    "db": "spendgate.cli.db_cmd:db_app",
    "ledger": "spendgate.cli.ledger_cmd:ledger_app",
    "models": "spendgate.cli.models_cmd:models_app",
    "decisions": "spendgate.cli.decisions_cmd:decisions_app",
    "budgets": "spendgate.cli.budgets_cmd:budgets_app",
    "rate-limits": "spendgate.cli.rate_limits_cmd:rate_limits_app",
    "pricing": "spendgate.cli.pricing_cmd:pricing_app",
    "keys": "spendgate.cli.keys_cmd:keys_app",
    "approvals": "spendgate.cli.approvals_cmd:approvals_app",
    "alerts": "spendgate.cli.alerts_cmd:alerts_app",
    "usage": "spendgate.cli.usage_cmd:usage_app",
}


class _Commands(MutableMapping[str, "Command"]):
    """The root group's commands: each is built, as ``app.add_typer`` or ``app.command``
    would have built it, the first time it is asked for."""

    def __init__(self, built: MutableMapping[str, Command]) -> None:
        self._built = built

    def __getitem__(self, name: str) -> Command:
        if name not in self._built:
            if not _COMMANDS.get(name):
                raise KeyError(name)
            self._built[name] = _build(name)
        return self._built[name]

    def __contains__(self, name: object) -> bool:
        return name in self._built or bool(_COMMANDS.get(str(name)))

    def __setitem__(self, name: str, command: Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*_COMMANDS, *self._built]))

    def __len__(self) -> int:
        return len(dict.fromkeys([*_COMMANDS, *self._built]))


class _RootGroup(TyperGroup):
    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands(self.commands)


def _build(name: str) -> Command:
    """The command as the root app would have built it: through an app of its own that holds
    only it (Typer's public API, whichever version)."""
    module, attribute = _COMMANDS[name].split(":")
    defined: Any = getattr(import_module(module), attribute)
    holder = typer.Typer(
        rich_markup_mode=app.rich_markup_mode, pretty_exceptions_short=app.pretty_exceptions_short
    )
    holder.callback()(_holder)  # a group, whether it holds a group or a command
    if isinstance(defined, typer.Typer):
        holder.add_typer(defined, name=name)
    else:
        holder.command(name)(defined)
    group = typer.main.get_command(holder)
    assert isinstance(group, TyperGroup)
    return group.commands[name]


def _holder() -> None:
    """Holds one command while it is built."""


app = typer.Typer(
    cls=_RootGroup,
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


@app.command("version")
def version_command() -> None:
    """Print the installed spendgate version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("spendgate")
    except PackageNotFoundError:  # running from a source tree without installing
        installed = "unknown"
    typer.echo(f"spendgate {installed}")


def main() -> None:
    """Console-script entry point (``spendgate = spendgate.cli:main``)."""
    app()
