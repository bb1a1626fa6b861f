"""Schema migrations, run from code: users need no alembic.ini.

The Alembic scripts ship inside the package (``spendgate/store/migrations``). ``migrate`` upgrades
a database to the newest revision; on an up-to-date database it does nothing. On SQLite the
upgrade runs in one ``BEGIN IMMEDIATE`` transaction, so two processes starting together
serialise and the second finds the schema already at head.

Alembic itself is imported only when a database needs upgrading: importing it cost the
gateway ~0.2 s of startup and ~11 MB of memory on every start of an up-to-date database.
The up-to-date check compares the ``alembic_version`` row with ``HEAD_REVISION`` (a test
keeps that constant equal to the newest script's revision).

A new (empty) SQLite file does not need Alembic either: it gets the statements SQLite itself
recorded after the scripts ran on an empty file (``sqlite_schema.sql``: from ``sqlite_master``,
tables in creation order then indexes; the ``alembic_version`` and ``sqlite_sequence`` rows),
replayed in the same ``BEGIN IMMEDIATE`` transaction. That spares every first start of an
embedded database ~0.25 s and ~10 MB. ``python -m spendgate.store.migrate`` rewrites the
file; a test keeps a replayed file's full dump equal to a migrated one's.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, Engine, column, select, table
from sqlalchemy.exc import OperationalError, ProgrammingError

from spendgate.store.db import make_engine, write_engine

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "HEAD_REVISION",
    "MIGRATIONS_DIR",
    "SchemaOutOfDateError",
    "alembic_config",
    "current_revision",
    "head_revision",
    "migrate",
    "require_current",
]

# The newest migration script's revision: update it with each new script.
HEAD_REVISION: Final = "0009"

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_SCHEMA = Path(__file__).with_name("sqlite_schema.sql")
# Between the statements of ``SQLITE_SCHEMA`` (none contains it).
_SEPARATOR = "\n;\n"
# Alembic's ``context``/``op`` proxies are module globals: one migration at a time per process.
_LOCK = threading.Lock()


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic ``Config`` built in code (also handy for ``command.revision`` in development)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url is not None:
        # ConfigParser interpolation would choke on '%' in URL-escaped passwords.
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest revision according to the scripts themselves (Alembic reads them)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The database's revision, ``None`` for a database Alembic never touched."""
    version = table("alembic_version", column("version_num"))
    try:
        with engine.connect() as connection:
            return connection.execute(select(version.c.version_num)).scalar_one_or_none()
    except (OperationalError, ProgrammingError):  # no such table (SQLite / PostgreSQL)
        return None


def migrate(database_url: str, *, engine: Engine | None = None) -> None:
    """Upgrade the database at ``database_url`` to head (a no-op when already there).

    ``engine``: reuse an engine from ``db.make_engine`` (the journal does), so the SQLite
    pragmas apply; otherwise one is made and disposed of here.
    """
    own_engine = engine is None
    active = engine if engine is not None else make_engine(database_url)
    try:
        if current_revision(active) == HEAD_REVISION:
            return  # the common case on every start: no Alembic machinery, no write lock
        with _LOCK, write_engine(active).connect() as connection:
            if active.dialect.name == "sqlite" and _empty(connection):
                for statement in SQLITE_SCHEMA.read_text().split(_SEPARATOR):
                    connection.exec_driver_sql(statement)
            else:
                from alembic import command

                config = alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            connection.commit()
    finally:
        if own_engine:
            active.dispose()


def _empty(connection: Connection) -> bool:
    """No table at all. Asked first in the write transaction (``BEGIN IMMEDIATE`` holds the
    lock), so a process starting alongside cannot create tables in between."""
    found = connection.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar_one()
    return int(found) == 0


def sqlite_schema_statements(path: Path) -> list[str]:
    """What SQLite recorded in the migrated file at ``path``: each table's statement in
    creation order, each index's, then the ``alembic_version`` and ``sqlite_sequence`` rows."""
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            # sqlite_sequence is SQLite's own, made with the first AUTOINCREMENT table. Indexes
            # come last by name: Alembic's batch rebuilds create them in set order, which
            # changes from one run to the next.
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name != 'sqlite_sequence' "
            "ORDER BY type = 'index', CASE type WHEN 'index' THEN name END, rowid"
        ).fetchall()
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        sequences = connection.execute("SELECT name, seq FROM sqlite_sequence").fetchall()
    statements = [str(sql) for (sql,) in rows]
    statements.append(f"INSERT INTO alembic_version (version_num) VALUES ('{revision}')")
    # A table rebuilt by a script left its AUTOINCREMENT counter behind (at 0): same here.
    statements.extend(f"INSERT INTO sqlite_sequence VALUES ('{n}', {int(q)})" for n, q in sequences)
    assert all(_SEPARATOR not in statement for statement in statements)
    return statements


def run_scripts_on_sqlite(database: Path) -> None:
    """Migrate the SQLite file ``database`` to head by running every script through Alembic
    (never the replayed schema): what ``sqlite_schema.sql`` is written from and checked
    against."""
    from alembic import command

    engine = make_engine(f"sqlite:///{database}")
    try:
        config = alembic_config()
        with write_engine(engine).connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
    finally:
        engine.dispose()


def write_sqlite_schema(path: Path = SQLITE_SCHEMA) -> None:
    """Run the scripts on an empty file and write what it recorded (see the module docstring)."""
    with tempfile.TemporaryDirectory() as temp:
        database = Path(temp) / "schema.db"
        run_scripts_on_sqlite(database)
        path.write_text(_SEPARATOR.join(sqlite_schema_statements(database)) + "\n")


class SchemaOutOfDateError(RuntimeError):
    """The database's schema is not the one this version of spendgate needs."""

    def __init__(self, url: str, revision: str | None) -> None:
        found = "no spendgate schema" if revision is None else f"schema revision {revision}"
        super().__init__(
            f"database {url} has {found}; this spendgate needs revision {HEAD_REVISION}. "
            "Apply the migrations first: spendgate db upgrade --config FILE"
        )
        self.revision = revision


def require_current(engine: Engine, url: str) -> None:
    """Raise ``SchemaOutOfDateError`` unless the database is at ``HEAD_REVISION``.

    Shared databases are upgraded by an operator (``spendgate db upgrade``), not by whichever
    replica starts first: a rolling deploy must not change the schema under running ones."""
    revision = current_revision(engine)
    if revision != HEAD_REVISION:
        raise SchemaOutOfDateError(url, revision)


if __name__ == "__main__":
    write_sqlite_schema(Path(sys.argv[1]) if len(sys.argv) > 1 else SQLITE_SCHEMA)
