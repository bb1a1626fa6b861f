"""The journal's writer process: ``python -m spendgate.store.writer_process IN_FD OUT_FD``.

Started by the gateway's ``ProcessWriter`` (``writer_client``). It reads compact records
from ``IN_FD``, turns them back into journal items and hands them to a ``BatchWriter``, the
same group-commit thread an in-process journal uses (so batching, retries, isolation of bad
items and the database code exist once). On ``OUT_FD`` it reports progress (items done with,
in order, and the writer's counters) and forwards its log records to the gateway's logging.

It runs below the gateway's priority and, when the gateway is pinned to some CPUs and others
exist, on those others, so the commits never take the event loop's core (the gateway sets
both as it spawns it: ``writer_client``).

It ignores SIGINT and SIGTERM: a terminal's Ctrl-C or a service manager's stop signal reach
the whole process group, and the gateway's graceful shutdown still has records to send. It
stops at the end of its input: after the gateway's ``close`` (which commits everything) or
when the gateway died (kill -9, OOM): it then commits what it had received and exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from spendgate.store.compact import Decoder
from spendgate.store.db import make_engine, write_engine
from spendgate.store.frames import read_frame, write_frame
from spendgate.store.writer import BatchWriter, JournalError, WriterSettings

__all__ = ["main"]

log = logging.getLogger("spendgate.journal")

# The child stops reading while this many batches wait: the backlog then stays in the
# gateway's bounded queue (compact records), not here as rebuilt objects.
_BATCHES_AHEAD = 2


class _Reporter:
    """Sends progress and log lines to the gateway (from the reading and writer threads)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self.undecodable = 0

    def send(self, message: tuple[Any, ...]) -> None:
        # The gateway may be gone: the records still get committed.
        with self._lock, contextlib.suppress(OSError):
            write_frame(self._fd, message)

    def progress(self, writer: BatchWriter) -> None:
        stats = writer.stats()
        rejected = stats.rejected_items + self.undecodable
        done = stats.committed_items + stats.skipped_items + rejected + stats.lost_items
        self.send(
            (
                "progress",
                done,
                writer.in_flight(),
                stats.committed_items,
                stats.committed_batches,
                stats.skipped_items,
                rejected,
                stats.failed_attempts,
                stats.lost_items,
                stats.last_error,
            )
        )


class _Forward(logging.Handler):
    def __init__(self, reporter: _Reporter) -> None:
        super().__init__(logging.INFO)
        self._reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        self._reporter.send(("log", record.levelno, record.name, message))


def main(argv: Sequence[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    source = os.fdopen(int(argv[0]), "rb")
    reporter = _Reporter(int(argv[1]))
    spendgate_log = logging.getLogger("spendgate")
    spendgate_log.addHandler(_Forward(reporter))
    spendgate_log.setLevel(logging.INFO)
    spendgate_log.propagate = False
    opening = read_frame(source)
    if opening is None:
        return 0
    database_url, busy_timeout_ms, settings = opening
    assert isinstance(settings, WriterSettings)
    engine = make_engine(database_url, busy_timeout_ms=busy_timeout_ms)
    progressed = threading.Event()

    def progress() -> None:
        reporter.progress(writer)
        progressed.set()

    # The gateway bounds the backlog (``max_pending``): nothing is dropped on this side.
    writer = BatchWriter(
        write_engine(engine),
        replace(settings, max_pending=sys.maxsize),
        name="spendgate-journal-process",
        on_progress=progress,
    )
    close_timeout: float | None = None
    decoder = Decoder()
    ahead = _BATCHES_AHEAD * settings.max_batch_items
    while True:
        while writer.queued() > ahead:
            progressed.wait(0.1)
            progressed.clear()
        message = read_frame(source)
        if message is None:
            break
        if message[0] == "close":
            close_timeout = message[1]
            break
        _, flush, records = message
        undecodable = reporter.undecodable
        for record in records:
            try:
                item = decoder.decode(record)
            except Exception:  # a bug in the encoding: count it, never stop writing
                reporter.undecodable += 1
                log.exception("journal record rejected: it could not be decoded")
                continue
            if item is not None:
                writer.put(item)
        if flush:
            writer.request_flush()
        if reporter.undecodable != undecodable:
            progress()
    try:
        writer.close(close_timeout)
    except JournalError:  # logged, and counted as lost in the report below
        pass
    finally:
        progress()
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
