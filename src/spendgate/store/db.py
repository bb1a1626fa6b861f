"""Engines and dialect helpers: the only place that knows SQLite from PostgreSQL.

SQLite specifics (set on every new connection by a ``connect`` listener):

* ``journal_mode=WAL``: readers never block the writer and vice versa.
* ``synchronous=NORMAL``: in WAL mode a commit survives a process crash; only an OS crash or
  power loss can roll back the last commits (never corrupt the file). See docs/journal.md.
* ``busy_timeout``: a writer waits for a competing lock instead of failing at once.
* ``foreign_keys=ON``.

and once, when the file is created: ``auto_vacuum=INCREMENTAL``, so pruning can hand pages
back to the OS (``PRAGMA incremental_vacuum``) instead of the file only ever growing. Setting it
on an existing file is a write: it waited for the write lock, so every new connection (an
admin read included) waited behind a long write transaction and then failed.

pysqlite starts transactions lazily and only before DML, so a read-then-write transaction could
fail to upgrade its lock with SQLITE_BUSY (which ``busy_timeout`` cannot wait out). We take over
``BEGIN`` (the recipe from SQLAlchemy's SQLite docs) and write transactions use
``BEGIN IMMEDIATE`` (``write_engine``), which takes the write lock up front, waiting politely.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import ConnectionPoolEntry

from spendgate.store.money import ATTO

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "DEFAULT_DATABASE_URL",
    "datetime_encoder",
    "dialect_insert",
    "insert_tuples",
    "is_busy",
    "make_engine",
    "read_only_engine",
    "safe_url",
    "upsert_increment",
    "write_engine",
]

DEFAULT_DATABASE_URL = "sqlite:///./spendgate.db"
DEFAULT_BUSY_TIMEOUT_MS = 5000
_BEGIN_OPTION = "spendgate_sqlite_begin"
# PostgreSQL: lock_not_available (lock_timeout), query_canceled (statement_timeout).
_PG_BUSY = frozenset({"55P03", "57014"})


def safe_url(url: str | URL) -> str:
    """The URL with its password masked, for logs and errors."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(database_url: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Engine:
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database backend {backend!r} in {safe_url(url)}")
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        # Each connection to an in-memory database is a different, empty database: the
        # background writer would write where nobody reads.
        raise ValueError("the journal needs a SQLite *file* (e.g. sqlite:///./spendgate.db)")
    # hide_parameters: a failed statement's error text must never carry row values into logs.
    engine = create_engine(url, hide_parameters=True, pool_pre_ping=backend != "sqlite")
    if backend == "sqlite":
        _configure_sqlite(engine, busy_timeout_ms)
    return engine


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` means another transaction held a lock longer than we wait for it
    (SQLite ``database is locked``, PostgreSQL lock or statement timeout), or no pooled
    connection came free in time: the database works, it is only busy."""
    if isinstance(exc, PoolTimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        return "locked" in str(orig) or "busy" in str(orig)
    return getattr(orig, "sqlstate", None) in _PG_BUSY or getattr(orig, "pgcode", None) in _PG_BUSY


def read_only_engine(database_url: str) -> Engine | None:
    """An engine that can only read ``database_url`` (for inspecting it while a gateway may be
    using it); ``None`` for a SQLite file that does not exist, which is never created."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(
            url, hide_parameters=True, execution_options={"postgresql_readonly": True}
        )
    if not url.database or not Path(url.database).is_file():
        return None
    uri = f"file:{Path(url.database).resolve().as_posix()}?mode=ro"
    return create_engine(
        "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True), hide_parameters=True
    )


def write_engine(engine: Engine) -> Engine:
    """The same pool, but transactions take the write lock up front (SQLite ``BEGIN IMMEDIATE``)."""
    return engine.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Driver-level autocommit: we emit BEGIN ourselves (see the module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            # Only an empty file can still choose it (before the WAL switch writes page 1);
            # reading page_count takes no lock.
            if cursor.execute("PRAGMA page_count").fetchone()[0] == 0:
                cursor.execute("PRAGMA auto_vacuum = INCREMENTAL")
            _enable_wal(cursor, busy_timeout_ms)
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        begin = connection.get_execution_options().get(_BEGIN_OPTION, "BEGIN")
        connection.exec_driver_sql(begin)


def _enable_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """Switch the file to WAL (persistent, so usually already done).

    The switch needs an exclusive lock and SQLite does not wait for it with the busy handler,
    so processes opening a new file together retry here instead of failing.
    """
    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
        return
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def dialect_insert(connection: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT with ``on_conflict_do_*`` for the connection's backend (same API on both)."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _sqlite_datetime(at: datetime) -> str:
    # Exactly what SQLAlchemy's SQLite DATETIME stores (tests compare the two), so rows written
    # here read back through the typed table and compare correctly as text.
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return at.replace(tzinfo=None).isoformat(" ", "microseconds")


def _naive_utc(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)


def datetime_encoder(dialect_name: str) -> Callable[[datetime], Any]:
    """How ``insert_tuples`` values carry an aware instant on this backend (naive UTC)."""
    return _sqlite_datetime if dialect_name == "sqlite" else _naive_utc


def insert_tuples(
    connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Bulk INSERT of driver-ready tuples, skipping SQLAlchemy's per-value type processing.

    Only for the per-request hot table, whose values the codec already encodes (it costs
    SQLAlchemy about as much CPU as SQLite itself, under the GIL shared with the event loop).
    """
    if not rows:
        return
    quote = connection.dialect.identifier_preparer.quote
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    statement = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(marker for _ in columns)})"
    )
    connection.exec_driver_sql(statement, list(rows))


def upsert_increment(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    keys: Sequence[str],
    add: Sequence[str] = (),
    add_amounts: Sequence[str] = (),
    replace: Sequence[str] = (),
) -> None:
    """``INSERT … ON CONFLICT (keys) DO UPDATE`` adding the new values to the stored ones.

    ``rows``: values in ``columns`` order, driver-ready but for datetimes (encoded here).

    ``add``: plain numeric columns (``x = x + excluded.x``). ``add_amounts``: split fixed-point
    amounts ``<name>_units`` / ``<name>_atto`` (see ``money``), added exactly with a carry from
    the atto part (both atto parts are in ``[0, 10¹⁸)`` so their sum fits a BIGINT and SQL's
    truncating integer division is a floor). ``replace``: columns overwritten (``updated_at``).
    """
    if not rows:
        return
    statement = _upsert_sql(
        connection.dialect.name,
        connection.dialect.paramstyle,
        table.name,
        tuple(columns),
        tuple(keys),
        tuple(add),
        tuple(add_amounts),
        tuple(replace),
    )
    # Driver-ready tuples, like ``insert_tuples``: this runs for every batch, on several
    # rollup tables, under the GIL the event loop shares.
    encode = datetime_encoder(connection.dialect.name)
    instants = [i for i, value in enumerate(rows[0]) if isinstance(value, datetime)]
    values = []
    for row in rows:
        encoded = list(row)
        for index in instants:
            encoded[index] = encode(encoded[index])
        values.append(tuple(encoded))
    connection.exec_driver_sql(statement, values)


@functools.cache
def _upsert_sql(
    dialect: str,
    paramstyle: str,
    table: str,
    columns: tuple[str, ...],
    keys: tuple[str, ...],
    add: tuple[str, ...],
    add_amounts: tuple[str, ...],
    replace: tuple[str, ...],
) -> str:
    """The text of ``upsert_increment``'s statement (the same on SQLite and PostgreSQL)."""
    marker = "?" if paramstyle == "qmark" else "%s"
    quoted = {name: f'"{name}"' for name in (*columns, *keys)}
    target = f'"{table}"'
    updates = [f"{quoted[n]} = {target}.{quoted[n]} + excluded.{quoted[n]}" for n in add]
    for name in add_amounts:
        units, atto = quoted[f"{name}_units"], quoted[f"{name}_atto"]
        atto_sum = f"({target}.{atto} + excluded.{atto})"
        # Both atto parts are in [0, 10^18): their sum fits a BIGINT and integer division
        # truncates, which is the floor for non-negative numbers.
        updates.append(f"{units} = {target}.{units} + excluded.{units} + {atto_sum} / {ATTO}")
        modulo = "%" if paramstyle == "qmark" else "%%"  # a literal % with %s markers
        updates.append(f"{atto} = {atto_sum} {modulo} {ATTO}")
    updates += [f"{quoted[n]} = excluded.{quoted[n]}" for n in replace]
    return (
        f"INSERT INTO {target} ({', '.join(quoted[c] for c in columns)}) "
        f"VALUES ({', '.join(marker for _ in columns)}) "
        f"ON CONFLICT ({', '.join(quoted[k] for k in keys)}) DO UPDATE SET {', '.join(updates)}"
    )
