"""``spendgate serve``: run the gateway (uvicorn with uvloop and httptools)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from spendgate.logs import LogFormat, LogLevel

__all__ = ["serve_command"]


def serve_command(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar="SPENDGATE_CONFIG",
            help="Config file (default: built-in demo).",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8787,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", help="Least severe level logged.")
    ] = LogLevel.INFO,
    log_format: Annotated[
        LogFormat,
        typer.Option("--log-format", help="text, or json: one JSON object a line."),
    ] = LogFormat.TEXT,
    access_log: Annotated[
        bool,
        typer.Option("--access-log", help="Log one line per proxied request."),
    ] = False,
) -> None:
    """Serve the proxy (/v1/chat/completions, /v1/messages, /v1/models), /healthz,
    /metrics and the admin API (/api/v1).

    Logs go to stderr: what is served, provider health, journal trouble, admin changes.

    With --access-log, one line per proxied request too. The log lines: docs/cli.md."""
    # Imported here: every other command (the admin CLI) starts without the gateway's weight.
    import uvicorn

    from spendgate.config import ConfigError, load_config

    try:
        loaded = load_config(config)
    except ConfigError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    if workers > 1 and loaded.ledger_url is None:
        # Each worker would keep its own in-memory ledger and admit up to every limit: refuse
        # rather than overspend (or silently run one worker). The database URL is named only
        # for SQLite: a server URL may carry a password.
        where = (
            f" (this config's database is SQLite: {loaded.database_url})"
            if loaded.database_url.startswith("sqlite")
            else ""
        )
        typer.echo(
            f"spendgate: --workers > 1 needs a shared ledger{where}: each worker would admit "
            "requests up to every budget limit. Set ledger_url: redis://… in the config (see "
            "the README, 'Deploy several replicas'), or run one worker (--workers 1).",
            err=True,
        )
        raise typer.Exit(2)
    if workers > 1:
        _serve_workers(loaded.source, host, port, workers, log_level, log_format, access_log)
        return
    from spendgate.gateway.compose import create_gateway
    from spendgate.gateway.startup import log_startup
    from spendgate.logs import configure
    from spendgate.store.journal import Journal
    from spendgate.store.migrate import SchemaOutOfDateError
    from spendgate.store.writer import WriterSettings

    log_config = configure(log_level, log_format, access_log=access_log)
    try:
        journal = Journal(
            loaded.database_url,
            settings=WriterSettings(
                max_pending=loaded.journal.max_pending, process=loaded.journal.writer == "process"
            ),
            # The embedded SQLite file is this process's own; a shared database is upgraded
            # by an operator (spendgate db upgrade), never by whichever replica starts first.
            auto_migrate=loaded.database_url.startswith("sqlite"),
        )
    except SchemaOutOfDateError as error:
        typer.echo(f"spendgate: {error}", err=True)
        raise typer.Exit(2) from None
    gateway = create_gateway(loaded, os.environ, journal=journal)
    log_startup(gateway, loaded, _listen_url(host, port), os.environ)
    # The journal's writer thread encodes decisions in Python: with the default 5 ms GIL
    # switch interval the event loop waited up to tens of ms behind it (p99 82 ms measured
    # unloaded); 0.5 ms bounds that wait (p99 20 ms) at a negligible cost in switches.
    sys.setswitchinterval(0.0005)
    from spendgate.gateway.supervisor import SERVING

    uvicorn.run(
        gateway,
        host=host,
        port=port,
        log_config=log_config,
        log_level=log_level.value,
        **SERVING,
    )


def _listen_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _serve_workers(
    source: str,
    host: str,
    port: int,
    workers: int,
    log_level: LogLevel,
    log_format: LogFormat,
    access_log: bool,
) -> None:
    """N worker processes (``gateway.supervisor``), each building its gateway from the
    config (``gateway.worker``); they share budgets through the config's ledger."""
    from spendgate.config import DEMO_SOURCE
    from spendgate.gateway.supervisor import WorkerFailedError, serve_workers
    from spendgate.gateway.worker import CONFIG_ENV, LISTEN_ENV
    from spendgate.logs import configure

    if source != DEMO_SOURCE:
        os.environ[CONFIG_ENV] = str(Path(source).resolve())
    os.environ[LISTEN_ENV] = _listen_url(host, port)
    log_config = configure(log_level, log_format, access_log=access_log)
    try:
        serve_workers(host, port, workers, log_config)
    except OSError as error:
        typer.echo(f"spendgate: cannot listen on {_listen_url(host, port)}: {error}", err=True)
        raise typer.Exit(1) from None
    except WorkerFailedError as error:
        typer.echo(f"spendgate: {error}; stopped (the worker's log above says why)", err=True)
        raise typer.Exit(1) from None
