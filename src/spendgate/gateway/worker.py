"""One worker of ``spendgate serve --workers N``: uvicorn starts N processes and each builds
its own gateway from the same config (its own journal writer, its own connection to the
shared ledger), so budgets hold across them through the ledger, not through memory.

``serve`` passes what the worker needs in the environment, which the worker processes inherit:
the config file, the listen address (for the start-up block) and the log settings.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Final

from spendgate.gateway.app import Gateway

__all__ = ["CONFIG_ENV", "LISTEN_ENV", "create_worker_gateway"]

CONFIG_ENV: Final = "SPENDGATE_WORKER_CONFIG"
LISTEN_ENV: Final = "SPENDGATE_WORKER_LISTEN"


def create_worker_gateway() -> Gateway:
    """The uvicorn factory each worker process calls."""
    from spendgate.config import load_config
    from spendgate.gateway.compose import create_gateway
    from spendgate.gateway.startup import log_startup
    from spendgate.store.journal import Journal
    from spendgate.store.writer import WriterSettings

    path = os.environ.get(CONFIG_ENV)
    config = load_config(Path(path) if path else None)
    journal = Journal(
        config.database_url,
        settings=WriterSettings(
            max_pending=config.journal.max_pending, process=config.journal.writer == "process"
        ),
        auto_migrate=config.database_url.startswith("sqlite"),
    )
    gateway = create_gateway(config, os.environ, journal=journal)
    log_startup(
        gateway, config, f"{os.environ.get(LISTEN_ENV, '?')} (worker {os.getpid()})", os.environ
    )
    sys.setswitchinterval(0.0005)  # as serve does: see serve_cmd
    return gateway
