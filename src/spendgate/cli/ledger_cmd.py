"""``spendgate ledger …``: the shared ledger, from the operator's side.

``rebuild`` raises every live counter of the Redis ledger to the journal's settled amount: after
Redis lost its data (a restart without persistence, a failover to an empty replica), the
budgets get their history back. It never lowers a counter and never adds twice, so it is safe
while gateways run (they do the same by themselves when they reconnect). It opens the database
and Redis directly; it never prints a password.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING

import typer

from spendgate.cli.config_cmd import ConfigOption

if TYPE_CHECKING:
    from spendgate.domain.budgets import CounterKey

__all__ = ["ledger_app"]

ledger_app = typer.Typer(help="The shared budget ledger (Redis).", no_args_is_help=True)


@ledger_app.command("rebuild")
def rebuild(config: ConfigOption = None) -> None:
    """Raise the shared ledger's counters to the journal's settled amounts."""
    from spendgate.config import ConfigError, load_config
    from spendgate.governor import Governor
    from spendgate.ledger.memory import MemoryLedger
    from spendgate.store.journal import Journal

    try:
        loaded = load_config(config)
    except ConfigError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    if loaded.ledger_url is None:
        typer.echo(
            "spendgate ledger rebuild: this config has no shared ledger (ledger_url): each "
            "gateway rebuilds its in-memory ledger from the journal when it starts.",
            err=True,
        )
        raise typer.Exit(1)
    from spendgate.store.migrate import SchemaOutOfDateError

    try:
        journal = Journal(loaded.database_url, auto_migrate=False)
    except SchemaOutOfDateError as error:
        typer.echo(f"spendgate ledger rebuild: {error}", err=True)
        raise typer.Exit(1) from None
    try:
        counters = Governor.from_config(loaded, MemoryLedger(), journal).journaled_counters()
    finally:
        journal.close()
    raised = asyncio.run(_seed(loaded.ledger_url, loaded.ledger_prefix, counters))
    typer.echo(f"{raised} of {len(counters)} live counter(s) raised to the journal's")


async def _seed(url: str, prefix: str, counters: dict[CounterKey, Decimal]) -> int:
    from redis.asyncio import Redis

    from spendgate.ledger.base import LedgerUnavailableError
    from spendgate.ledger.redis import RedisLedger

    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
    try:
        return await RedisLedger(client, prefix=prefix).seed(counters)
    except LedgerUnavailableError as error:
        typer.echo(f"spendgate ledger rebuild: Redis unreachable: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        await client.aclose()
