"""Records changed through another replica apply here within a second.

Each replica answers admin changes by applying them to its own running state at once; the
others learn of them from the database: every ``interval`` seconds the watcher reads a small
fingerprint of the record tables (``store.fingerprint``) and, when it moved, reloads the
runtime records (budgets, prices, keys, approved overrides). One query per interval, never
one per request. Started only when several processes share a ledger.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import Engine

from spendgate.gateway.service import stop_task
from spendgate.records.service import RuntimeRecords
from spendgate.store.fingerprint import records_fingerprint

__all__ = ["RecordsWatcher"]

log = logging.getLogger("spendgate.records")


class RecordsWatcher:
    def __init__(self, records: RuntimeRecords, engine: Engine, interval: float = 0.5) -> None:
        self._records = records
        self._engine = engine
        self.interval = interval
        self._seen: tuple[Any, ...] | None = None
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0

    async def start(self) -> None:
        self._seen = await asyncio.to_thread(self._read)
        self._task = asyncio.create_task(self._watch(), name="spendgate-records-watch")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    def _read(self) -> tuple[Any, ...]:
        with self._engine.connect() as connection:
            return records_fingerprint(connection)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                seen = await asyncio.to_thread(self._read)
                if seen != self._seen:
                    await asyncio.to_thread(self._records.reload)
                    self._seen = seen
                    self.reloads += 1
                    log.info("runtime records changed (here or on another replica): reloaded")
            except Exception:  # the database is away: try again next interval
                log.warning("runtime records: could not check for changes", exc_info=True)
