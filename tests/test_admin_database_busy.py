"""A SQLite journal locked by a long write transaction (issue 8, item 16): the admin API's
readers never wait for the writer (WAL), and a write that cannot get the lock in time is a 503
``database_busy`` in the API's envelope, never a 500."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from admin_support import ADMIN_TOKEN, CONFIG, ENV
from gateway_support import serve
from spendgate.config import parse_config
from spendgate.gateway.compose import create_gateway
from spendgate.store.journal import Journal

BUSY_TIMEOUT_MS = 300
AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}"}
PRICE = {"model": "gpt-4o-mini", "input_per_mtok": "1.5", "output_per_mtok": "6"}


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
def api(database: Path) -> Iterator[str]:
    config = parse_config(CONFIG.format(mock="http://127.0.0.1:9"), "test.yaml")
    journal = Journal(f"sqlite:///{database}", busy_timeout_ms=BUSY_TIMEOUT_MS)
    with serve(create_gateway(config, ENV, journal=journal)) as url:
        yield url + "/api/v1"


@pytest.fixture
def write_lock(database: Path) -> Iterator[None]:
    """Another process's long write transaction, holding SQLite's write lock."""
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("DELETE FROM pricing_rows WHERE 0")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_readers_do_not_wait_for_a_writer_holding_the_lock(api: str, write_lock: None) -> None:
    # Concurrent reads need more connections than the pool keeps idle: each new connection
    # used to set a pragma that waits for the write lock, then fail with a 500.
    with ThreadPoolExecutor(8) as pool:
        replies = list(
            pool.map(
                lambda _: httpx.get(f"{api}/usage/summary", headers=AUTH, timeout=30), range(8)
            )
        )
    assert [reply.status_code for reply in replies] == [200] * 8
    assert all(reply.json()["requests"] == 0 for reply in replies)


def test_a_write_that_cannot_get_the_lock_is_a_503_database_busy(api: str, database: Path) -> None:
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        reply = httpx.post(f"{api}/pricing", json=PRICE, headers=AUTH, timeout=30)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert reply.status_code == 503
    error = reply.json()["error"]
    assert error["code"] == "database_busy"
    assert error["type"] == "api_error"
    assert "busy" in error["message"]
    assert "sqlite" not in error["message"].lower()  # no driver internals
    assert reply.headers["retry-after"] == "1"
    # Once the lock is free, the same write goes through.
    assert httpx.post(f"{api}/pricing", json=PRICE, headers=AUTH, timeout=30).status_code == 201
