"""Migrations: shipped in the package, run from code, idempotent, equal to ``schema.py``."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from spendgate.store import schema
from spendgate.store.db import make_engine
from spendgate.store.migrate import (
    HEAD_REVISION,
    MIGRATIONS_DIR,
    SQLITE_SCHEMA,
    current_revision,
    head_revision,
    migrate,
    run_scripts_on_sqlite,
    write_sqlite_schema,
)


def _objects(path: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(path) as connection:
        return sorted(connection.execute("SELECT type, name, sql FROM sqlite_master"))


def test_migrate_creates_every_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate(url)
    engine = make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert tables == set(schema.metadata.tables) | {"alembic_version"}


def test_migrate_twice_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "twice.db"
    migrate(f"sqlite:///{path}")
    before = _objects(path)
    migrate(f"sqlite:///{path}")
    assert _objects(path) == before
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (head_revision(),)
        ]


def test_concurrent_first_starts_migrate_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate(url)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with sqlite3.connect(tmp_path / "race.db") as connection:
        assert connection.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)


def test_migration_matches_the_declared_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'compare.db'}"
    migrate(url)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, schema.metadata) == []
    finally:
        engine.dispose()


def test_partial_unique_indexes_exist(tmp_path: Path) -> None:
    path = tmp_path / "indexes.db"
    migrate(f"sqlite:///{path}")
    with sqlite3.connect(path) as connection:
        sql = dict(connection.execute("SELECT name, sql FROM sqlite_master WHERE type='index'"))
    assert "WHERE state = 'pending'" in sql["uq_approvals_pending"]
    assert "WHERE state IN ('open', 'acknowledged')" in sql["uq_alerts_dedupe_key_unresolved"]


def test_new_sqlite_files_can_return_space_to_the_os(tmp_path: Path) -> None:
    path = tmp_path / "vacuum.db"
    migrate(f"sqlite:///{path}")
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # INCREMENTAL
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_migration_scripts_ship_inside_the_package() -> None:
    # Hatchling's wheel includes every file under src/spendgate; these must be there.
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert (MIGRATIONS_DIR / "versions" / "0001_initial.py").is_file()
    assert MIGRATIONS_DIR.parent.name == "store"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "mysql://x/y"])
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"SQLite \*file\*|unsupported"):
        make_engine(url)


def test_head_revision_constant_matches_the_scripts() -> None:
    assert head_revision() == HEAD_REVISION


def test_up_to_date_database_opens_without_importing_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'current.db'}"
    migrate(url)
    assert not _migrating_imports_alembic(url)


def test_current_revision_of_an_untouched_database_is_none(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert current_revision(engine) is None
    finally:
        engine.dispose()


def _migrating_imports_alembic(url: str) -> bool:
    """Whether ``migrate(url)`` in a fresh interpreter imports Alembic."""
    probe = (
        "import sys\n"
        "from spendgate.store.migrate import migrate\n"
        f"migrate({url!r})\n"
        "print('alembic' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.strip() == "True"


def _dump(path: Path) -> tuple[list[str], list[tuple[object, ...]]]:
    """Every row and schema statement (sorted: rowids of dropped objects are reused), and the
    file-level settings."""
    with sqlite3.connect(path) as connection:
        settings = [
            connection.execute(f"PRAGMA {name}").fetchone()
            for name in ("auto_vacuum", "journal_mode", "user_version", "page_size", "encoding")
        ]
        return sorted(connection.iterdump()), settings


def test_a_new_sqlite_file_gets_the_migrated_schema_without_alembic(tmp_path: Path) -> None:
    replayed = tmp_path / "replayed.db"
    assert not _migrating_imports_alembic(f"sqlite:///{replayed}")
    # The same file as Alembic running every script on an empty file makes.
    migrated = tmp_path / "migrated.db"
    run_scripts_on_sqlite(migrated)
    assert _dump(replayed) == _dump(migrated)
    assert current_revision(make_engine(f"sqlite:///{replayed}")) == HEAD_REVISION


def test_shipped_sqlite_schema_is_the_scripts_result(tmp_path: Path) -> None:
    """A new script (or an edited one) fails here until the file is rewritten:
    ``python -m spendgate.store.migrate``."""
    written = tmp_path / "sqlite_schema.sql"
    write_sqlite_schema(written)
    assert written.read_text() == SQLITE_SCHEMA.read_text()
