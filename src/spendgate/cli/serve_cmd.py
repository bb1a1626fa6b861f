"""``spendgate serve``: run the gateway (uvicorn with uvloop and httptools)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

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
) -> None:
    """Serve the proxy (/v1/chat/completions, /v1/messages, /v1/models), /healthz and
    /metrics."""
    # Imported here: every other command (the admin CLI) starts without the gateway's weight.
    import uvicorn

    from spendgate.config import ConfigError, load_config

    try:
        loaded = load_config(config)
    except ConfigError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    if workers > 1:
        # The ledger lives in one process's memory: several workers would each admit up to
        # every limit. Scale-out needs a shared ledger (PostgreSQL or Redis), not built yet;
        # whatever the database, refuse rather than overspend (or silently run one worker).
        # The URL is named only for SQLite: a server URL may carry a password.
        if loaded.database_url.startswith("sqlite"):
            why = f"this config uses SQLite ({loaded.database_url})"
        else:
            why = "this version keeps the ledger in each worker's memory"
        typer.echo(
            f"spendgate: --workers > 1 needs a shared ledger, and {why}: each worker would "
            "admit requests up to every budget limit. Run one worker (--workers 1).",
            err=True,
        )
        raise typer.Exit(2)
    from spendgate.gateway.app import create_gateway
    from spendgate.store.journal import Journal
    from spendgate.store.writer import WriterSettings

    journal = Journal(
        loaded.database_url, settings=WriterSettings(max_pending=loaded.journal.max_pending)
    )
    gateway = create_gateway(loaded, os.environ, journal=journal)
    # The journal's writer thread encodes decisions in Python: with the default 5 ms GIL
    # switch interval the event loop waited up to tens of ms behind it (p99 82 ms measured
    # unloaded); 0.5 ms bounds that wait (p99 20 ms) at a negligible cost in switches.
    sys.setswitchinterval(0.0005)
    uvicorn.run(
        gateway,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )
