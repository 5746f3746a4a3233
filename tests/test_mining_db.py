"""The mining tables (migration 0019) and their data layer: COPY, search, feature matrix, exact
similarity on plain arrays (the embedded server has no pgvector), and the SQL mode's read-only
role, timeout and row cap."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import psycopg
import pytest

from candela.db import mining

NAMES = ["a", "b", "c"]


def _row(i: int, **kw: Any) -> dict[str, Any]:
    w, s = 1.0 + i * 0.01, 44.0
    row = {
        "stack_uri": "file:///stack.tif",
        "product_id": "P1",
        "dataset": "test",
        "acquired": dt.datetime(2020, 5, 1 + i % 3, tzinfo=dt.UTC),
        "sensors": ["s2"],
        "row_off": 0,
        "col_off": i * 16,
        "size": 16,
        "crs": "EPSG:32630",
        "west": w,
        "south": s,
        "east": w + 0.01,
        "north": s + 0.01,
        "footprint": {"type": "Polygon", "coordinates": [[[w, s], [w + 0.01, s], [w, s]]]},
        "valid_share": 1.0,
        "feature_set": "t-v1",
        "features": [float(i), float(i % 2), 10.0 * i],
        "embedding": [float(i), 0.0],
        "quicklook_uri": f"file:///q/{i}.png",
        "truth": None,
        "mined_by_run": "r1",
    }
    row.update(kw)
    return row


@pytest.fixture
def filled(catalog_dsn: str) -> str:
    with psycopg.connect(catalog_dsn) as conn:
        assert mining.insert_patches(conn, "t-v1", NAMES, [_row(i) for i in range(6)]) == 6
    return catalog_dsn


def test_copy_search_matrix_and_exact_similarity(filled: str) -> None:
    with psycopg.connect(filled) as conn:
        everything = mining.search_patches(conn)
        assert len(everything) == 6
        west = mining.search_patches(conn, bbox=(1.0, 44.0, 1.015, 44.5))
        assert sorted(p["col_off"] for p in west) == [0, 16]
        day = mining.search_patches(conn, start=dt.date(2020, 5, 2), end=dt.date(2020, 5, 2))
        assert sorted(p["col_off"] // 16 for p in day) == [1, 4]
        assert mining.search_patches(conn, dataset="other") == []
        ids = [p["id"] for p in sorted(everything, key=lambda p: p["col_off"])]
        found, x = mining.feature_matrix(conn, [ids[3], 999_999, ids[1]])
        assert found == [ids[3], ids[1]]
        np.testing.assert_allclose(x, [[3, 1, 30], [1, 1, 10]])
        # exact on the plain arrays; pgvector (when the server has it) gives the same answer
        near = mining.similar(conn, ids[2], 3, pgvector=False)
        assert [i for i, _ in near] == [ids[1], ids[3], ids[0]]
        assert [d for _, d in near] == pytest.approx([1.0, 1.0, 2.0])
        if mining.has_pgvector(conn):
            vec = mining.similar(conn, ids[2], 3)
            assert [i for i, _ in vec] == [i for i, _ in near]
            assert [d for _, d in vec] == pytest.approx([d for _, d in near])
        by_features = mining.similar(conn, ids[0], 2, on="features")
        assert by_features[0][0] == ids[1] or by_features[0][0] == ids[2]
        with pytest.raises(LookupError):
            mining.similar(conn, 999_999, 3)


def test_a_failed_copy_leaves_no_row_and_a_feature_set_keeps_its_names(catalog_dsn: str) -> None:
    with psycopg.connect(catalog_dsn) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            with conn.transaction():
                mining.insert_patches(conn, "t-v1", NAMES, [_row(0), _row(1), _row(0)])
        assert mining.count_patches(conn) == 0
        mining.insert_patches(conn, "t-v1", NAMES, [])
        conn.commit()
        with pytest.raises(Exception, match="other feature names"):
            mining.insert_patches(conn, "t-v1", ["x"], [])


def test_sql_mode_answers_refuses_writes_and_cancels_long_statements(filled: str) -> None:
    cols, rows, truncated = mining.readonly_query(
        filled,
        "SELECT dataset, count(*) AS patches,"
        " round(avg(candela.mine_feature(feature_names, features, 'c'))::numeric, 1) AS mean_c"
        " FROM candela.mine_v_patches GROUP BY dataset",
        timeout_s=5,
        max_rows=10,
    )
    assert cols == ["dataset", "patches", "mean_c"]
    assert [tuple(map(str, r)) for r in rows] == [("test", "6", "25.0")]
    assert not truncated
    _, rows, truncated = mining.readonly_query(
        filled, "SELECT id FROM mine_v_patches ORDER BY id", timeout_s=5, max_rows=4
    )
    assert len(rows) == 4 and truncated
    for bad in (
        "DELETE FROM candela.mine_patches",
        "select 1; delete from candela.mine_patches",
        "WITH d AS (DELETE FROM candela.mine_patches RETURNING id) SELECT count(*) FROM d",
        "SELECT * FROM candela.mine_patches",  # the base table: not for the reader role
        "SELECT * FROM candela.schema_migrations",
        # back to the session's (superuser) role inside the statement (defence in depth)
        "SELECT set_config('role', 'postgres', true), query_to_xml("
        "'SELECT * FROM candela.schema_migrations', true, true, '')",
        "SELECT \"SET_CONFIG\"('role', 'postgres', true)",
    ):
        with pytest.raises(mining.QueryRefused, match="refused"):
            mining.readonly_query(filled, bad, timeout_s=5, max_rows=10)
    with pytest.raises(mining.QueryCancelled, match="cancelled: .* 0.5 s"):
        mining.readonly_query(filled, "SELECT pg_sleep(5)", timeout_s=0.5, max_rows=10)
    with psycopg.connect(filled) as conn:
        assert mining.count_patches(conn) == 6
