"""The data layer's migrations: discovery (platform + services' entry points) and applying."""

from __future__ import annotations

import sys
import uuid
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from candela import db


def test_platform_first_then_services_by_entry_point() -> None:
    comps = db.components()
    assert comps[0] == ("candela", "candela.db.migrations")
    assert ("search", "candela_search.migrations") in comps
    found = db.all_migrations()
    assert [m.component for m in found[:6]] == ["candela"] * 6
    assert [m.version for m in found if m.component == "candela"] == [1, 2, 3, 4, 17, 18, 19, 20]
    products = [m for m in found if m.component == "search"]
    assert [m.name for m in products] == ["products"]
    # the catalogue table is the search service's: the platform's SQL no longer creates it
    assert "CREATE TABLE IF NOT EXISTS candela.products" in products[0].sql
    assert not any("CREATE TABLE candela.products" in m.sql for m in found)


def _fake_package(tmp_path: Path, name: str, files: dict[str, str]) -> None:
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for fname, sql in files.items():
        (pkg / fname).write_text(sql)


def test_a_service_set_is_found_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_package(
        tmp_path,
        "fake_kb_migrations",
        {"0002_more.sql": "SELECT 2", "0001_first.sql": "SELECT 1", "notes.txt": "x"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [EntryPoint("kb", "fake_kb_migrations", db.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(
        db, "entry_points", lambda group: eps if group == db.ENTRY_POINT_GROUP else []
    )
    found = db.all_migrations()
    assert [(m.component, m.version, m.name) for m in found if m.component == "kb"] == [
        ("kb", 1, "first"),
        ("kb", 2, "more"),
    ]
    assert found[0].component == "candela"
    sys.modules.pop("fake_kb_migrations", None)


def test_two_sets_with_one_name_or_one_version_twice_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_package(tmp_path, "fake_dup_migrations", {"0001_a.sql": "", "0001_b.sql": ""})
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [EntryPoint("candela", "fake_dup_migrations", db.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(db, "entry_points", lambda group: eps)
    with pytest.raises(RuntimeError, match="two migration sets"):
        db.components()
    with pytest.raises(RuntimeError, match="duplicate migration versions"):
        db.read_migrations("fake_dup_migrations", "dup")
    sys.modules.pop("fake_dup_migrations", None)


def test_migrate_upgrades_a_database_of_the_older_layout(pg_server: str) -> None:
    """A database migrated before the catalogue moved to the search service: schema_migrations
    keyed by version alone, products created by the platform's 0001. Migrating again records
    the search set (a no-op on the existing table) and nothing else."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:10]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    dsn = pg_server.replace("/postgres?", f"/{name}?")
    platform = [m for m in db.all_migrations() if m.component == "candela"]
    search = [m for m in db.all_migrations() if m.component == "search"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA candela")
        conn.execute(
            "CREATE TABLE candela.schema_migrations (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for m in search + platform:  # the tables the old 0001/0002 created
            conn.execute(m.sql)  # type: ignore[arg-type]
        for m in platform:
            conn.execute(
                "INSERT INTO candela.schema_migrations (version, name) VALUES (%s, %s)",
                (m.version, m.name),
            )
        conn.execute(
            "INSERT INTO candela.products (id, collection, datetime, min_lon, min_lat, max_lon,"
            " max_lat, href, item) VALUES ('p', 'c', now(), 0, 0, 1, 1, 'file:///p', '{}')"
        )
    assert db.migrate(dsn) == ["search:0001_products"]
    assert db.migrate(dsn) == []
    assert db.current_version(dsn) == platform[-1].version
    assert db.current_version(dsn, "search") == 1
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM candela.products").fetchone() == (1,)
        keys = conn.execute(
            "SELECT column_name FROM information_schema.key_column_usage WHERE"
            " table_schema = 'candela' AND table_name = 'schema_migrations' ORDER BY column_name"
        ).fetchall()
    assert [k[0] for k in keys] == ["component", "version"]


def test_migrate_a_new_database(catalog_dsn: str) -> None:
    import psycopg

    assert db.migrate(catalog_dsn) == []
    with psycopg.connect(catalog_dsn) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'candela'"
            )
        }
    assert {"products", "results", "orders", "models", "watches", "run_claims"} <= tables
    assert {"scaling_decisions", "scaling_state", "node_metrics", "step_metrics"} <= tables
