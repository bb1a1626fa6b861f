"""Schema migrations, run from code: users need no alembic.ini.

The Alembic scripts ship inside the package (``spendgate/store/migrations``). ``migrate`` upgrades
a database to the newest revision; on an up-to-date database it does nothing. On SQLite the
upgrade runs in one ``BEGIN IMMEDIATE`` transaction, so two processes starting together
serialise and the second finds the schema already at head.

Alembic itself is imported only when a database needs upgrading: importing it cost the
gateway ~0.2 s of startup and ~11 MB of memory on every start of an up-to-date database.
The up-to-date check compares the ``alembic_version`` row with ``HEAD_REVISION`` (a test
keeps that constant equal to the newest script's revision).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Engine, column, select, table
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
        from alembic import command

        config = alembic_config()
        with _LOCK, write_engine(active).connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
    finally:
        if own_engine:
            active.dispose()


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
