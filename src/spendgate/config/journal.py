"""The ``journal`` section: where its writer runs, how many records may wait for the database,
and retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from spendgate.config.values import Duration, PositiveInt, Spec


class JournalSpec(Spec):
    # Records waiting for the database beyond this are dropped (counted, logged): memory
    # stays bounded when the database stalls, and requests never wait for it.
    max_pending: PositiveInt = 100_000
    # "process": encoding and commits happen in a writer process at lower priority, off the
    # event loop's interpreter; "thread": on a thread of the gateway (no second process).
    writer: Literal["process", "thread"] = "process"
    keep_decisions: Duration | None = timedelta(days=30)  # None: keep raw decisions forever
    prune_every: Duration = timedelta(hours=1)
