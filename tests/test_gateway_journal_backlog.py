"""A journal whose database stalls (issue 8, item 12): the writer's queue is bounded, requests
never wait for it, decision records beyond the bound are dropped and counted, counter
increments are kept, and the backlog shows in ``/metrics`` and ``/healthz``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway_support import (
    HELLO,
    ONE_PROVIDER,
    ONE_PROVIDER_ENV,
    Served,
    eventually,
    http,
    openai_client,
    serve,
    settled,
)
from spendgate.config import parse_config
from spendgate.gateway.compose import create_gateway
from spendgate.mock_upstream.runner import MockUpstreamThread
from spendgate.store.journal import Journal
from spendgate.store.writer import WriterSettings

CONFIG = (
    ONE_PROVIDER
    + """
budgets:
  - {{id: acme-tokens, scope: {{kind: project, id: acme}}, metric: tokens, interval: daily,
     hard_limit: 100000000}}
journal: {{max_pending: 4}}
"""
)
ENV = ONE_PROVIDER_ENV


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0) as mock:
        yield mock


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
def served(mock: MockUpstreamThread, database: Path) -> Iterator[Served]:
    config = parse_config(CONFIG.format(mock=mock.base_url), "test.yaml")
    settings = WriterSettings(
        max_pending=config.journal.max_pending, retry_initial_ms=10, retry_max_ms=20
    )
    journal = Journal(f"sqlite:///{database}", busy_timeout_ms=10, settings=settings)
    gateway = create_gateway(config, ENV, journal=journal)
    with serve(gateway) as url:
        yield Served(gateway, url, journal)


def metrics(served: Served) -> dict[str, float]:
    text = http("GET", served.url + "/metrics").text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("spendgate_journal")
    }


def test_a_stalled_database_fills_a_bounded_queue_and_requests_go_on(
    served: Served, database: Path
) -> None:
    assert served.journal is not None
    client = openai_client(served, "sg-alice")
    assert http("GET", served.url + "/healthz").json()["status"] == "ok"
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        # The writer holds that request's records in a failing batch; the rest must queue.
        assert eventually(
            lambda: served.journal is not None and served.journal.stats().failed_attempts > 0
        )
        for _ in range(10):
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            assert reply.choices[0].message.content
        backlog = metrics(served)
        assert backlog["spendgate_journal_pending"] <= 2 + 4  # the batch in flight + the bound
        assert backlog["spendgate_journal_max_pending"] == 4
        # Each request queues a decision and its counter increments: with 4 places, 8 of the
        # 10 decisions are dropped; the increments are held, never dropped.
        assert backlog["spendgate_journal_dropped_total"] == 8
        health = http("GET", served.url + "/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert health.json()["journal"]["dropped"] == 8
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert served.journal.flush(10)
    # Budgets survive a restart: every request's usage reached the stored counters.
    (stored,) = served.journal.load_counters().values()
    assert stored.settled == settled(served, "acme-tokens", "acme")
    assert len(served.journal.list_decisions()) == 11 - 8
    assert metrics(served)["spendgate_journal_pending"] == 0
