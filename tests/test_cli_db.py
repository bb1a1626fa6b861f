"""``spendgate db upgrade`` / ``db status`` and ``serve`` on an out-of-date database, as an
operator runs them: the installed console script, a real PostgreSQL (skipped, saying why, when
there is none) and a SQLite file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from admin_support import SPENDGATE
from postgres_support import throwaway_postgres
from serve_support import free_port, serve_process

CONFIG = """
providers: [{id: mock, kind: mock}]
models: [{id: gpt-4o-mini, provider: mock}]
routing: {default_model: gpt-4o-mini}
database_url: "URL"
"""
ENV = {"SPENDGATE_ADMIN_TOKEN": "sg-db-test-admin"}


def spendgate(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    base = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    return subprocess.run(
        [SPENDGATE, *args, "--config", str(directory / "spendgate.yaml")],
        capture_output=True, text=True, timeout=120, env={**base, **ENV}, cwd=directory,
    )  # fmt: skip


def test_a_replica_refuses_a_shared_database_until_an_operator_upgrades_it(
    tmp_path: Path,
) -> None:
    with throwaway_postgres() as url:
        password_free = url.replace("postgresql+psycopg://", "postgresql://")
        (tmp_path / "spendgate.yaml").write_text(CONFIG.replace("URL", password_free))
        port = free_port()
        refused = subprocess.run(
            [SPENDGATE, "serve", "--config", str(tmp_path / "spendgate.yaml"), "--port",
             str(port)],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
            env={**{k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}, **ENV},
        )  # fmt: skip
        assert refused.returncode == 2, refused.stderr
        assert "has no spendgate schema" in refused.stderr
        assert "spendgate db upgrade --config FILE" in refused.stderr
        # Nothing was created behind the operator's back.
        engine = create_engine(url)
        with engine.connect() as connection:
            tables = connection.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema='public'")
            ).scalar_one()
        assert tables == 0
        status = spendgate(tmp_path, "db", "status")
        assert status.returncode == 1
        assert "schema revision none; this version needs" in status.stdout

        upgraded = spendgate(tmp_path, "db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        assert "upgraded from an empty database to revision" in upgraded.stdout
        again = spendgate(tmp_path, "db", "upgrade")
        assert "nothing to do" in again.stdout
        assert spendgate(tmp_path, "db", "status").returncode == 0
        # An older schema is refused by name (the revision it has).
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0007'"))
        old = spendgate(tmp_path, "db", "status")
        assert old.returncode == 1
        assert "schema revision 0007" in old.stdout
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :head"),
                               {"head": status.stdout.split("needs ")[-1].strip()})  # fmt: skip
        engine.dispose()
        config = (tmp_path / "spendgate.yaml").read_text()
        with serve_process(tmp_path, config, ENV) as running:
            assert httpx.get(running.url + "/healthz").status_code == 200


def test_the_embedded_sqlite_file_is_migrated_by_serve_and_by_db_upgrade(tmp_path: Path) -> None:
    database = tmp_path / "own.db"
    (tmp_path / "spendgate.yaml").write_text(CONFIG.replace("URL", f"sqlite:///{database}"))
    upgraded = spendgate(tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"sqlite:///{database}: upgraded from an empty database" in upgraded.stdout
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    config = CONFIG.replace("URL", f"sqlite:///{fresh / 'new.db'}")
    with serve_process(fresh, config, ENV) as running:  # no upgrade needed: serve does it
        assert httpx.get(running.url + "/healthz").status_code == 200


def test_a_password_is_never_printed(tmp_path: Path) -> None:
    url = "postgresql://spendgate:s3cret-pw@127.0.0.1:1/none"
    (tmp_path / "spendgate.yaml").write_text(CONFIG.replace("URL", url))
    failed = spendgate(tmp_path, "db", "upgrade")
    assert failed.returncode == 1
    assert "s3cret-pw" not in failed.stdout + failed.stderr
    assert "spendgate:***@127.0.0.1:1/none" in failed.stderr


@pytest.mark.parametrize("command", ["upgrade", "status"])
def test_a_bad_config_is_named(tmp_path: Path, command: str) -> None:
    (tmp_path / "spendgate.yaml").write_text("providers: nope\n")
    done = spendgate(tmp_path, "db", command)
    assert done.returncode == 1
    assert "spendgate.yaml" in done.stderr
