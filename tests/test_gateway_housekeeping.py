"""The running gateway's periodic housekeeping (issue 8, item 17): counters of windows no
budget reads any more leave the in-memory ledger, and retention deletes old raw decisions and
old windows' stored counters while the hourly rollups stay."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway_support import (
    HELLO,
    ONE_PROVIDER,
    ONE_PROVIDER_ENV,
    Served,
    counter,
    eventually,
    journal_url_for,
    openai_client,
    serve,
)
from spendgate.config import parse_config
from spendgate.domain.budgets import CounterKey, counters_for
from spendgate.domain.pricing import Usage
from spendgate.domain.scopes import RequestScopes
from spendgate.gateway.compose import create_gateway
from spendgate.mock_upstream.runner import MockUpstreamThread
from spendgate.store import schema
from spendgate.store.journal import Journal

CONFIG = (
    ONE_PROVIDER
    + """
budgets:
  - {{id: acme-daily, scope: {{kind: project, id: acme}}, metric: tokens, interval: daily,
     hard_limit: 100000000}}
journal: {{keep_decisions: 30d}}
"""
)
ENV = ONE_PROVIDER_ENV
ACME = RequestScopes(project="acme", principal="alice", api_key="alice")
OLD = datetime.now(UTC) - timedelta(days=40)


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamThread]:
    with MockUpstreamThread(latency_ms=0) as mock:
        yield mock


@pytest.fixture
def served(mock: MockUpstreamThread, tmp_path: Path) -> Iterator[Served]:
    config = parse_config(CONFIG.format(mock=mock.base_url), "test.yaml")
    journal = Journal(journal_url_for(tmp_path / "journal.db"))
    gateway = create_gateway(config, ENV, journal=journal)
    gateway.housekeeping.prune_interval_s = 0.05
    gateway.housekeeping.retention_interval_s = 0.05
    with serve(gateway) as url:
        yield Served(gateway, url, journal)


def settle_old_request(served: Served) -> CounterKey:
    """A request made 40 days ago, settled now: its window and decision are long past."""
    governor = served.gateway.governor
    decision = governor.plan({"model": "gpt-4o-mini", "messages": HELLO}, ACME, OLD)
    assert governor.reserve(decision).ok
    governor.settle(decision, Usage(input_tokens=10, output_tokens=20))
    (policy,) = governor.state.policies
    (key,), _ = counters_for(policy, "acme", OLD)
    return key


def count(served: Served, table: str) -> int:
    assert served.journal is not None
    with served.journal.engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(schema.metadata.tables[table])
            ).scalar_one()
        )


def test_the_ledger_drops_counters_of_windows_no_budget_reads(served: Served) -> None:
    old = settle_old_request(served)
    assert served.ledger.read(old).settled == 30  # the old window's counter is in memory
    openai_client(served, "sg-alice").chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert eventually(lambda: served.ledger.read(old).settled == 0)
    assert counter(served, "acme-daily", "acme").settled > 0  # today's window stays
    assert served.ledger.members("acme-daily", [old.window]) == set()


def test_retention_deletes_old_decisions_and_counters_but_keeps_rollups(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "spendgate.housekeeping")
    settle_old_request(served)
    openai_client(served, "sg-alice").chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert served.journal is not None
    assert served.journal.flush(10)
    old_hour = OLD.replace(minute=0, second=0, microsecond=0)
    (old_rollup,) = served.journal.usage_totals(old_hour, old_hour + timedelta(hours=1))
    assert old_rollup.requests == 1

    journal = served.journal

    def pruned() -> bool:
        assert journal.flush(10)
        return count(served, "routing_decisions") == 1 and count(served, "usage_counters") == 1

    assert eventually(pruned)
    (recent,) = served.journal.list_decisions()
    assert recent.decision.created_at > OLD + timedelta(days=39)
    # The rollups of the deleted decisions' hour are kept: history stays in the console.
    assert served.journal.usage_totals(old_hour, old_hour + timedelta(hours=1)) == [old_rollup]
    assert eventually(
        lambda: any(
            "retention: deleted 1 decision(s) and 0 finished" in r.getMessage()
            for r in caplog.records
        )
    )
