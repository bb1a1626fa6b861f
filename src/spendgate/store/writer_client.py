"""The gateway's side of a journal written by a separate process (``writer_process``).

``put`` encodes an item into a compact record (``compact``) and appends it to a bounded
in-memory queue: no I/O, no wait. A sender thread wakes when records arrive, gathers them for
``send_interval_ms`` and writes them to the writer process as one frame, so a request costs
no system call of its own. A reader thread receives the writer's progress (how many items it
is done with, in order: committed, skipped, rejected or abandoned) and its log lines, which
it logs here.

The writer process is started when the journal opens, by the sender thread: serving never
waits for it, and it is up (~0.5 s of imports) before the gateway's first requests, so the
journal lags the requests by a batch window from the start (a shared ledger seeded from it
relies on that). Its start is a fresh interpreter (``subprocess``: no fork of a process that
has threads and an event loop).

The queue is bounded by ``max_pending`` items not yet done with, wherever they wait (here, in
the pipe, in the writer's queue); the batch the writer is committing does not count, as with
the in-process writer. Past the bound, ``overflow.Overflow`` holds counter increments and
drops decision records.

If the writer process dies (a bug, the OOM killer, a stray kill), the items it had not done
with are lost: logged at CRITICAL, counted in ``stats().lost_items``, and a new writer is
started (at once the first time, then with a growing delay while it keeps dying).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import IO, Any

from spendgate.store.batch import CounterIncrements, Item, describe
from spendgate.store.compact import Encoder, Record, counters_record
from spendgate.store.frames import read_frame, write_frame
from spendgate.store.overflow import Overflow
from spendgate.store.writer import JournalClosedError, JournalError, WriterSettings, WriterStats

__all__ = ["ProcessWriter"]

log = logging.getLogger("spendgate.journal")

_CHILD_MODULE = "spendgate.store.writer_process"
# How far below the gateway's priority the writer process runs.
NICENESS = 10
_RESTART_DELAYS_S = (0.0, 0.1, 0.5, 2.0, 10.0)
_HEALTHY_AFTER_S = 60.0  # a writer that lived this long resets the restart delay
_CLOSE_MARGIN_S = 10.0  # on top of the close timeout: the writer's own start and exit


@dataclass(slots=True)
class _Child:
    """One writer process and what it was sent and reported."""

    process: subprocess.Popen[bytes]
    fd: int  # its input (our write end)
    output: IO[bytes]  # its reports
    started: float
    sent: int = 0  # items sent to it
    done: int = 0  # items it reported done with
    in_flight: int = 0
    counters: tuple[Any, ...] = (0, 0, 0, 0, 0, 0, None)  # as in its progress report
    broken: bool = False  # a write failed: it is dying
    gone: threading.Event = field(default_factory=threading.Event)


class ProcessWriter:
    """Same interface as ``writer.BatchWriter``; the commits happen in a writer process."""

    def __init__(self, database_url: str, busy_timeout_ms: int, settings: WriterSettings) -> None:
        self._opening = (database_url, busy_timeout_ms, settings)
        self._settings = settings
        self._encoder = Encoder()
        self._lock = threading.Lock()  # the encoder, the queue's order and the counts below
        self._queue: deque[Record] = deque()
        self._enqueued = 0  # items ever queued
        self._sent = 0  # items ever sent to a writer
        self._done_before = 0  # items sent to writers that are gone (done or lost)
        self._child: _Child | None = None
        self._overflow = Overflow(settings.max_pending)
        self._released = (0, 0)  # (how many times held increments were queued, at which item)
        self._progress = threading.Condition()
        self._wake = threading.Event()
        self._idle = False
        self._flush_asked = False
        self._closed = False
        self._close_timeout = settings.close_timeout_s
        # Counters of writers that are gone, and what deaths and closing lost.
        self._finished: list[int] = [0, 0, 0, 0, 0, 0]
        self._lost = 0
        self._restarts = 0
        self._died_closing = False
        self._deaths_in_a_row = 0
        self._last_error: str | None = None
        self._sender = threading.Thread(target=self._send_loop, name="spendgate-journal-send")
        self._sender.daemon = True
        self._sender.start()

    # --- caller side (any thread, including the event loop) -------------------------------

    def put(self, item: Item) -> None:
        if self._closed:
            raise JournalClosedError("the journal is closed")
        child = self._child
        in_flight = 0 if child is None else child.in_flight
        if self._enqueued - self._done() - in_flight < self._settings.max_pending:
            with self._lock:
                self._encoder.encode(item, self._queue)
                self._enqueued += 1
            if self._idle:
                self._wake.set()
        elif isinstance(item, CounterIncrements):
            self._overflow.hold(item.increments)
            self._wake.set()
        else:
            self._overflow.drop(describe(item), self._last_error)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything put before this call is done with (committed, or rejected,
        or lost with a writer process that died: those are logged and counted)."""
        target = self._enqueued
        held = self._overflow.held_counters > 0
        released_before = self._released[0]
        self._flush_asked = True
        self._wake.set()

        def reached() -> bool:
            if self._done() < target:
                return False
            times, at = self._released
            return not held or (times > released_before and self._done() >= at)

        with self._progress:
            return self._progress.wait_for(reached, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Send everything, let the writer commit it and exit, reap it. Raises
        ``JournalError`` if items were lost (the database stayed unavailable past
        ``timeout``, or a writer process died)."""
        if self._closed and not self._sender.is_alive():
            return
        self._close_timeout = self._settings.close_timeout_s if timeout is None else timeout
        self._closed = True
        self._wake.set()
        patience = self._close_timeout + _CLOSE_MARGIN_S
        self._sender.join(patience)
        child = self._child
        if child is not None and (self._sender.is_alive() or not child.gone.wait(patience)):
            log.error("journal writer process %d did not exit: killing it", child.process.pid)
            child.process.kill()
            child.gone.wait(_CLOSE_MARGIN_S)
            self._sender.join(_CLOSE_MARGIN_S)
        stats = self.stats()
        lost = stats.lost_items + len(self._queue) + stats.held_counters
        if lost:
            log.error("journal closed with %d item(s) not committed (%s)", lost, stats.last_error)
            raise JournalError(f"{lost} journal item(s) could not be committed: {stats.last_error}")

    def stats(self) -> WriterStats:
        child = self._child
        current = (0, 0, 0, 0, 0, 0, None) if child is None else child.counters
        committed, batches, skipped, rejected, failed, lost = (
            before + now for before, now in zip(self._finished, current[:6], strict=True)
        )
        return WriterStats(
            pending=self._enqueued - self._done(),
            committed_items=committed,
            committed_batches=batches,
            skipped_items=skipped,
            rejected_items=rejected,
            failed_attempts=failed,
            lost_items=lost + self._lost,
            last_error=current[6] or self._last_error,
            max_pending=self._settings.max_pending,
            dropped_items=self._overflow.dropped,
            held_counters=self._overflow.held_counters,
            seconds_since_drop=self._overflow.seconds_since_drop(),
            writer_restarts=self._restarts,
        )

    def _done(self) -> int:
        child = self._child
        return self._done_before + (0 if child is None else child.done)

    # --- sender thread ---------------------------------------------------------------------

    def _send_loop(self) -> None:
        try:
            self._send_until_closed()
        except BaseException:  # never expected: say so loudly, nothing more is written
            log.critical("journal sender thread died: nothing more is journaled", exc_info=True)

    def _send_until_closed(self) -> None:
        interval = self._settings.send_interval_ms / 1000
        self._start()
        while True:
            self._wait_for_work()
            if not (self._closed or self._flush_asked):
                time.sleep(interval)  # gather: one write for every request of the interval
            flush, self._flush_asked = self._flush_asked, False
            closing = self._closed
            self._release_held()
            if closing and self._child is None and self._enqueued == self._sent:
                return  # nothing was ever left to send, or the writer is gone already
            child = self._child_for_sending(closing)
            if child is None:  # closing, and the writer died meanwhile: the rest is lost
                with self._lock:
                    self._lost += self._enqueued - self._sent
                    self._done_before += self._enqueued - self._sent
                    self._sent = self._enqueued
                    self._queue.clear()
                return
            with self._lock:
                records = list(self._queue)
                self._queue.clear()
                child.sent += self._enqueued - self._sent
                self._sent = self._enqueued
            try:
                if records or flush:
                    write_frame(child.fd, ("records", flush, records))
                if closing and not self._queue and not self._overflow.held_counters:
                    write_frame(child.fd, ("close", self._close_timeout))
                    os.close(child.fd)
                    return
            except OSError:
                child.broken = True  # the reader sees it exit and counts what it lost
                child.gone.wait()
            if closing:  # held increments wait for room: let the writer make some
                self._wake.wait(0.01)
                self._wake.clear()

    def _wait_for_work(self) -> None:
        if self._queue or self._closed or self._flush_asked or self._room_for_held():
            return
        self._idle = True
        if not (self._queue or self._closed or self._flush_asked):
            self._wake.wait()
        self._wake.clear()
        self._idle = False

    def _room_for_held(self) -> bool:
        child = self._child
        in_flight = 0 if child is None else child.in_flight
        waiting = self._enqueued - self._done() - in_flight
        return self._overflow.held_counters > 0 and waiting < self._settings.max_pending

    def _release_held(self) -> None:
        """Queue the increments a full queue held back, once there is room again."""
        if not self._room_for_held():
            return
        held = self._overflow.take_held()
        with self._lock:
            self._queue.append(counters_record(held))
            self._enqueued += 1
            self._released = (self._released[0] + 1, self._enqueued)

    def _child_for_sending(self, closing: bool) -> _Child | None:
        """The running writer; a new one if there is none (after a delay while they keep
        dying); None if one died while the journal was closing."""
        child = self._child
        if child is not None and child.broken:
            child.gone.wait()
            child = self._child
        if child is not None:
            return child
        if closing and self._died_closing:
            return None
        if not closing:
            time.sleep(_RESTART_DELAYS_S[min(self._deaths_in_a_row, len(_RESTART_DELAYS_S) - 1)])
        return self._start()

    def _start(self) -> _Child:
        to_child, ours = os.pipe()
        theirs, from_child = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", _CHILD_MODULE, str(to_child), str(from_child)],
                pass_fds=(to_child, from_child),
                start_new_session=True,  # out of the terminal's process group (Ctrl-C)
            )
        finally:
            os.close(to_child)
            os.close(from_child)
        _step_aside(process.pid)
        child = _Child(process, ours, os.fdopen(theirs, "rb"), time.monotonic())
        with self._lock:
            # A new writer knows nothing: it gets every definition still in use first.
            self._queue.extendleft(reversed(self._encoder.definitions()))
        try:
            write_frame(ours, self._opening)
        except OSError:  # it died at once: the reader below sees it
            child.broken = True
        self._child = child
        threading.Thread(
            target=self._read_loop, args=(child,), name="spendgate-journal-read", daemon=True
        ).start()
        return child

    # --- reader thread (one per writer process) --------------------------------------------

    def _read_loop(self, child: _Child) -> None:
        while (message := read_frame(child.output)) is not None:
            if message[0] == "log":
                _, level, name, text = message
                logging.getLogger(name).log(level, "%s", text)
                continue
            _, done, in_flight, *counters = message
            child.in_flight = in_flight
            child.counters = tuple(counters)
            with self._progress:
                child.done = done
                self._progress.notify_all()
            if self._overflow.held_counters:
                self._wake.set()
        code = child.process.wait()
        child.output.close()
        self._gone(child, code)

    def _gone(self, child: _Child, code: int) -> None:
        with self._lock, self._progress:
            lost = child.sent - child.done
            self._finished = [
                before + now for before, now in zip(self._finished, child.counters[:6], strict=True)
            ]
            self._last_error = child.counters[6] or self._last_error
            self._done_before += child.sent
            self._lost += lost
            self._child = None
            self._progress.notify_all()
        clean = code == 0 and self._closed
        if not clean:
            self._died_closing = self._closed
            lived = time.monotonic() - child.started
            self._deaths_in_a_row = 0 if lived > _HEALTHY_AFTER_S else self._deaths_in_a_row + 1
            self._restarts += 1
            self._last_error = f"journal writer process exited with code {code}"
            log.critical(
                "journal writer process %d died (exit code %d): %d journal item(s) it had not "
                "committed are lost (%d in all); %s",
                child.process.pid,
                code,
                lost,
                self._lost,
                "starting a new one" if not self._closed else "the journal is closing",
            )
        child.gone.set()
        self._wake.set()


def _step_aside(pid: int) -> None:
    """Lower the new writer's priority and, when the gateway is pinned to some CPUs and others
    exist, move it to those. Done from here as soon as it is spawned: its own imports
    (SQLAlchemy: ~0.3 s of CPU) would otherwise compete with the gateway's start on its core.
    (It has one thread yet; the threads it starts inherit both settings.)"""
    with contextlib.suppress(OSError):  # gone already: its reader notices
        niceness = min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICENESS)
        os.setpriority(os.PRIO_PROCESS, pid, niceness)
    others = set(range(os.cpu_count() or 1)) - os.sched_getaffinity(0)
    if others:
        with contextlib.suppress(OSError):  # a cpuset may exclude them, or it is gone
            os.sched_setaffinity(pid, others)
