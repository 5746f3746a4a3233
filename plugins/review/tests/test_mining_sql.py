"""``POST /candela/mine/sql``: answers a query over the mining views as JSON, refuses a writing
statement (400) and cancels a long one (422), each with one clear line."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest


@pytest.fixture
def client(catalog_dsn: str, tmp_path: Path) -> Iterator[Any]:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from candela.db import mining
    from candela.settings import Settings
    from candela_review.app import create_app

    rows = [
        {"stack_uri": "file:///s.tif", "dataset": "oscd", "sensors": ["s2"], "row_off": 0,
         "col_off": 32 * i, "size": 32, "crs": "EPSG:32630", "west": i, "south": 44.0,
         "east": i + 0.1, "north": 44.1, "footprint": {"type": "Polygon", "coordinates": []},
         "valid_share": 1.0, "feature_set": "t", "features": [0.1 * i], "quicklook_uri": f"q{i}",
         "acquired": dt.datetime(2016, 5, 4, tzinfo=dt.UTC)}
        for i in range(3)
    ]  # fmt: skip
    with psycopg.connect(catalog_dsn) as conn:
        mining.insert_patches(conn, "t", ["ndvi_mean"], rows)
    root = FastAPI()
    root.mount("/candela", create_app(Settings(home=tmp_path), catalog_dsn, auth=lambda: "u"))
    with TestClient(root) as c:
        yield c


def test_a_query_answers_json(client: Any) -> None:
    q = ("SELECT col_off, acquired, candela.mine_feature(feature_names, features, 'ndvi_mean')"
         " AS ndvi FROM candela.mine_v_patches ORDER BY col_off")  # fmt: skip
    r = client.post("/candela/mine/sql", json={"sql": q, "max_rows": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["columns"] == ["col_off", "acquired", "ndvi"]
    assert body["rows"][1][0] == 32 and body["rows"][1][2] == pytest.approx(0.1)
    assert body["rows"][0][1].startswith("2016-05-04")
    assert body["truncated"] is True and body["row_count"] == 2


def test_a_writing_statement_is_refused_and_a_long_one_cancelled(client: Any) -> None:
    r = client.post("/candela/mine/sql", json={"sql": "DROP TABLE candela.mine_patches"})
    assert r.status_code == 400
    assert r.json()["description"].startswith("refused: DROP is not a read-only query")
    r = client.post("/candela/mine/sql", json={"sql": "SELECT * FROM candela.mine_patches"})
    assert r.status_code == 400 and "permission denied" in r.json()["description"]
    r = client.post("/candela/mine/sql", json={"sql": "SELECT pg_sleep(5)", "timeout_s": 0.3})
    assert r.status_code == 422
    assert r.json()["description"] == "cancelled: the statement ran longer than the 0.3 s timeout"
    r = client.post(
        "/candela/mine/sql", json={"sql": "SELECT count(*) FROM candela.mine_v_patches"}
    )
    assert r.status_code == 200 and r.json()["rows"] == [[3]]
