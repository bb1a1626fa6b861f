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
    "alembic_config",
    "current_revision",
    "head_revision",
    "migrate",
]

# The newest migration script's revision: update it with each new script.
HEAD_REVISION: Final = "0008"

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
