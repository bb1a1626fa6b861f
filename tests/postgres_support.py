"""A throwaway PostgreSQL database for the tests that run against a real server.

The server comes from ``SPENDGATE_TEST_POSTGRES_URL`` or, by default, the local one this
project's machines start (127.0.0.1:5432, trust auth, database ``test``). Each test session
creates its own database and drops it afterwards, so runs never see each other's rows. Without
a reachable server (or the psycopg driver) the tests are skipped, saying why.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

__all__ = ["DEFAULT_SERVER_URL", "throwaway_postgres", "unavailable"]

DEFAULT_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Yield the URL of a fresh, empty database; drop it on exit."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("PostgreSQL tests: the psycopg driver is not installed")
    server = _server()
    name = f"spendgate_test_{secrets.token_hex(6)}"
    try:
        _administer(server, f'CREATE DATABASE "{name}"')
    except SQLAlchemyError as error:
        pytest.skip(f"PostgreSQL tests: no server at {server.render_as_string()} ({error.code})")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        _administer(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def unavailable() -> str | None:
    """Why the PostgreSQL tests cannot run here, asked once (None: they can)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "PostgreSQL tests: the psycopg driver is not installed"
    server = _server()
    probe = create_engine(server, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with probe.connect():
            pass
    except SQLAlchemyError as error:
        return f"PostgreSQL tests: no server at {server.render_as_string()} ({error.code})"
    finally:
        probe.dispose()
    return None


def _server() -> URL:
    return make_url(os.environ.get("SPENDGATE_TEST_POSTGRES_URL", DEFAULT_SERVER_URL))


def _administer(server: URL, statement: str) -> None:
    """One statement on the server's own database, on a connection closed right after: a
    database kept for the whole session (``gateway_support.journal_url_for``) must not hold
    one of the server's connections (100 by default) until it is dropped."""
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as connection:
            connection.execute(text(statement))
    finally:
        admin.dispose()
