"""The local catalogue (real PostgreSQL): idempotent upsert."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import psycopg
import pytest

from candela_sdk.errors import InputError, ServiceFailure
from candela_search import catalog
from candela_search.ingest import recognise
from candela_search.records import Skipped


def test_add_is_idempotent(catalog_dsn: str, oscd_bordeaux: Path) -> None:
    recs = recognise(oscd_bordeaux)
    assert catalog.add(catalog_dsn, recs) == (2, 0)
    assert catalog.add(catalog_dsn, recs) == (0, 2)
    assert catalog.count(catalog_dsn) == 2

    changed = dataclasses.replace(recs[0], cloud_cover=42.0, href="file:///elsewhere/imgs_1")
    assert catalog.add(catalog_dsn, [changed, Skipped(Path("x"), "ignored")]) == (0, 1)
    with psycopg.connect(catalog_dsn) as conn:
        rows = conn.execute(
            "SELECT id, collection, tile, cloud_cover, href, datetime, platform,"
            " min_lon, max_lat, item->>'id' FROM candela.products ORDER BY id"
        ).fetchall()
    assert len(rows) == 2
    first = rows[0]
    assert first[0] == "oscd-bordeaux-20160504" and first[9] == first[0]
    assert first[1:5] == ("sentinel-2-l1c", "T30TXQ", 42.0, "file:///elsewhere/imgs_1")
    assert first[5].year == 2016 and first[6] == "sentinel-2a"
    assert first[7] == pytest.approx(-0.600986, abs=1e-6)
    assert first[8] == pytest.approx(44.866820, abs=1e-6)
    assert catalog.remove(catalog_dsn, ["oscd-bordeaux-20160504", "nope"]) == 1
    assert catalog.count(catalog_dsn, "sentinel-2-l1c") == 1


def test_dsn_errors(monkeypatch: pytest.MonkeyPatch, pg_server: str) -> None:
    monkeypatch.delenv("CANDELA_DATABASE_URL", raising=False)
    with pytest.raises(InputError, match="CANDELA_DATABASE_URL"):
        catalog.count(None)
    # a database without the platform's migrations
    with pytest.raises(ServiceFailure, match="migrations"):
        catalog.count(pg_server)
    with pytest.raises(ServiceFailure, match="cannot connect"):
        catalog.count("postgresql://nobody@/nodb?host=/nonexistent-socket-dir")
