"""The journal's writer process: read-your-writes across processes, a writer that dies or
stalls, a gateway killed with SIGKILL, and the process itself (priority, reaped on close)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from postgres_support import throwaway_postgres
from spendgate.domain.budgets import CounterKey
from spendgate.store import Journal, JournalError, WriterSettings, schema
from spendgate.store.writer_client import NICENESS
from test_journal import count, make_decision

KEY = CounterKey("acme-daily", "acme", "2026-03-14T00:00:00Z")
WRITER = b"spendgate.store.writer_process"


def children(pid: int) -> list[int]:
    """The journal writer processes ``pid`` started (newest last)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if WRITER in command:
                found.append(int(child))
    return sorted(found)


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie nobody reaps (PID 1 of a container) is gone too


def eventually(condition: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'journal.db'}"
    else:
        with throwaway_postgres() as server:
            yield server


def test_flush_reads_your_writes_from_the_writer_process_which_close_reaps(url: str) -> None:
    # A batch window longer than the test: only the flush can have committed the records.
    journal = Journal(url, settings=WriterSettings(max_batch_wait_ms=60_000, process=True))
    assert eventually(lambda: len(children(os.getpid())) == 1)  # started at open
    for number in range(100):
        journal.append_decision(make_decision(number))
        journal.add_to_counters({KEY: Decimal("0.5")})
    assert journal.flush(timeout=10)
    assert count(journal, schema.routing_decisions) == 100
    assert journal.load_counters()[KEY].settled == 50
    (writer,) = children(os.getpid())
    assert os.getpriority(os.PRIO_PROCESS, writer) == os.getpriority(os.PRIO_PROCESS, 0) + min(
        NICENESS, 19 - os.getpriority(os.PRIO_PROCESS, 0)
    )
    stats = journal.stats()
    assert (stats.pending, stats.committed_items, stats.lost_items) == (0, 200, 0)
    journal.append_decision(make_decision(100))
    journal.close()
    assert not running(writer)
    assert children(os.getpid()) == []
    with Journal(url) as reopened:
        assert count(reopened, schema.routing_decisions) == 101


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs a second CPU to move to")
def test_the_writer_process_leaves_a_pinned_gateways_cpu(tmp_path: Path) -> None:
    """(The gateway moves it as it spawns it, before its imports; this checks where it ends
    up, not when it got there.)"""
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})  # this thread; the journal's sender thread inherits it
    try:
        journal = Journal(
            f"sqlite:///{tmp_path / 'journal.db'}", settings=WriterSettings(process=True)
        )
    finally:
        os.sched_setaffinity(0, mine)
    try:
        assert eventually(lambda: len(children(os.getpid())) == 1)
        (writer,) = children(os.getpid())
        assert os.sched_getaffinity(writer) == set(range(os.cpu_count() or 1)) - {0}
    finally:
        journal.close()


def test_a_killed_writer_process_is_logged_replaced_and_its_loss_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path / 'journal.db'}"
    settings = WriterSettings(
        max_batch_wait_ms=5, retry_initial_ms=10, retry_max_ms=20, process=True
    )
    journal = Journal(url, busy_timeout_ms=10, settings=settings)
    journal.append_decision(make_decision(0))
    assert journal.flush(timeout=10)
    # The writer holds the next records in a batch it cannot commit: they die with it.
    blocker = sqlite3.connect(tmp_path / "journal.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    for number in range(1, 6):
        journal.append_decision(make_decision(number))
    assert eventually(lambda: journal.stats().failed_attempts > 0)
    (writer,) = children(os.getpid())
    os.kill(writer, signal.SIGKILL)
    assert eventually(lambda: journal.stats().writer_restarts == 1)
    blocker.execute("ROLLBACK")
    blocker.close()
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1
    assert "5 journal item(s) it had not committed are lost" in critical[0].getMessage()
    assert journal.stats().lost_items == 5
    # A new writer takes over, knowing the policies the first one was told about.
    for number in range(6, 9):
        journal.append_decision(make_decision(number))
    journal.add_to_counters({KEY: Decimal(1)})
    assert journal.flush(timeout=10)
    (replacement,) = children(os.getpid())
    assert replacement != writer
    assert count(journal, schema.routing_decisions) == 4  # 0, then 6-8
    assert journal.get_decision("dec-000007") is not None
    stats = journal.stats()
    assert (stats.pending, stats.lost_items, stats.writer_restarts) == (0, 5, 1)
    with pytest.raises(JournalError, match="5 journal item"):  # close reports the loss too
        journal.close()


GATEWAY = textwrap.dedent(
    """
    import sys, time
    from decimal import Decimal
    sys.path.insert(0, {tests!r})
    from spendgate.domain.budgets import CounterKey
    from spendgate.store import Journal, WriterSettings
    from test_journal import make_decision

    journal = Journal({url!r}, settings=WriterSettings(max_batch_wait_ms=60_000, process=True))
    journal.append_decision(make_decision(0))
    journal.flush(10)  # the writer is up
    for number in range(1, 50):
        journal.append_decision(make_decision(number))
        journal.add_to_counters({{CounterKey("acme-daily", "acme", "k"): Decimal(1)}})
    time.sleep(0.5)  # sent (every 2 ms), not committed (the batch window is a minute)
    print("ready", flush=True)
    time.sleep(60)
    """
)


def test_a_gateway_killed_with_sigkill_leaves_its_writer_to_commit_what_it_received(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    script = GATEWAY.format(tests=str(Path(__file__).parent), url=url)
    gateway = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert gateway.stdout is not None
        assert gateway.stdout.readline() == b"ready\n"
        (writer,) = children(gateway.pid)
        gateway.kill()
        gateway.wait()
        assert eventually(lambda: not running(writer))  # it saw the end of its input
    finally:
        gateway.kill()
    with Journal(url) as journal:
        assert count(journal, schema.routing_decisions) == 50
        assert journal.load_counters()[CounterKey("acme-daily", "acme", "k")].settled == 49


def test_a_stalled_writer_process_bounds_the_queue_and_requests_never_wait(url: str) -> None:
    """The writer process stops (SIGSTOP): the pipe fills, then the gateway's queue stops at
    ``max_pending``; decision records beyond are dropped and counted, counter increments
    are merged and all committed once the writer runs again."""
    settings = WriterSettings(max_pending=50, max_batch_wait_ms=5, process=True)
    journal = Journal(url, settings=settings)
    journal.append_decision(make_decision(0))
    assert journal.flush(timeout=10)
    (writer,) = children(os.getpid())
    os.kill(writer, signal.SIGSTOP)
    try:
        started = time.perf_counter()
        for number in range(1, 2001):
            journal.append_decision(make_decision(number))
            journal.add_to_counters({KEY: Decimal(1)})
        assert time.perf_counter() - started < 2  # never waited for the writer
        time.sleep(0.1)  # the sender has filled the pipe and is blocked on it
        stats = journal.stats()
        assert stats.pending <= settings.max_pending
        assert stats.dropped_items > 1000
        assert stats.held_counters == 1
        assert stats.degraded
        assert journal.flush(timeout=0.2) is False
    finally:
        os.kill(writer, signal.SIGCONT)
    assert journal.flush(timeout=30)
    dropped = journal.stats().dropped_items
    assert count(journal, schema.routing_decisions) == 2001 - dropped
    assert journal.load_counters()[KEY].settled == 2000  # not one increment lost
    stats = journal.stats()
    assert (stats.pending, stats.held_counters, stats.lost_items) == (0, 0, 0)
    journal.close()
