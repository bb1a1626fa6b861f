"""``spendgate db …``: the database's schema, applied by an operator.

The embedded SQLite file is migrated by ``serve`` itself (one process owns it). A shared
PostgreSQL database is not: replicas refuse to start on an out-of-date schema, and whoever
deploys runs ``spendgate db upgrade`` once, so a rolling deploy never changes the schema
under replicas still running. These commands open the database directly (there may be no
daemon yet); they never print a password.
"""

from __future__ import annotations

from pathlib import Path

import typer

from spendgate.cli.config_cmd import ConfigOption

__all__ = ["db_app"]

db_app = typer.Typer(help="Apply or inspect the database schema.", no_args_is_help=True)


def _database_url(config: Path | None) -> str:
    from spendgate.config import ConfigError, load_config

    try:
        return load_config(config).database_url
    except ConfigError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None


def _database(config: Path | None, command: str) -> tuple[str, str, str | None]:
    """The config's database URL, the same without its password, and its schema revision
    (exit 1, saying why, when it cannot be read)."""
    from sqlalchemy.exc import SQLAlchemyError

    from spendgate.store.db import make_engine, safe_url
    from spendgate.store.migrate import current_revision

    url = _database_url(config)
    shown = safe_url(url)
    try:
        engine = make_engine(url)
        try:
            return url, shown, current_revision(engine)
        finally:
            engine.dispose()
    except SQLAlchemyError as error:
        typer.echo(
            f"spendgate db {command}: {shown}: {error.__class__.__name__}: {error}", err=True
        )
        raise typer.Exit(1) from None


@db_app.command("upgrade")
def upgrade(config: ConfigOption = None) -> None:
    """Apply the migrations this version needs (nothing when the schema is current)."""
    from sqlalchemy.exc import SQLAlchemyError

    from spendgate.store.migrate import HEAD_REVISION, migrate

    url, shown, before = _database(config, "upgrade")
    if before == HEAD_REVISION:
        typer.echo(f"{shown}: schema already at revision {HEAD_REVISION}; nothing to do")
        return
    try:
        migrate(url)
    except SQLAlchemyError as error:
        typer.echo(f"spendgate db upgrade: {shown}: {error.__class__.__name__}: {error}", err=True)
        raise typer.Exit(1) from None
    was = "an empty database" if before is None else f"revision {before}"
    typer.echo(f"{shown}: upgraded from {was} to revision {HEAD_REVISION}")


@db_app.command("status")
def status(config: ConfigOption = None) -> None:
    """Show the schema revision of the database and the one this version needs; exit 1 when
    they differ."""
    from spendgate.store.migrate import HEAD_REVISION

    _url, shown, revision = _database(config, "status")
    typer.echo(f"{shown}: schema revision {revision or 'none'}; this version needs {HEAD_REVISION}")
    if revision != HEAD_REVISION:
        typer.echo("run: spendgate db upgrade --config FILE", err=True)
        raise typer.Exit(1)
