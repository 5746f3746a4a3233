"""Orders: products + a workflow, recorded in the platform database, run through Airflow."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from candela import cli_orders as orders
from candela_sdk.errors import InputError
from candela_search import catalog, ingest
from tests.platform_helpers import Platform


@pytest.fixture
def bordeaux_dsn(catalog_dsn: str, oscd_bordeaux: Path) -> str:
    catalog.add(catalog_dsn, ingest.scan([oscd_bordeaux]).records)
    return catalog_dsn


def test_products_from_ids_items_and_feature_collection(bordeaux_dsn: str) -> None:
    ids = ["oscd-bordeaux-20171026", "oscd-bordeaux-20160504"]
    by_id = orders.load_products(ids, bordeaux_dsn)
    assert [p["id"] for p in by_id] == sorted(ids)  # sorted by date
    assert by_id[0]["tile"] == "T30TXQ" and by_id[0]["collection"] == "sentinel-2-l1c"
    with psycopg.connect(bordeaux_dsn) as conn:
        items = [r[0] for r in conn.execute("SELECT item FROM candela.products ORDER BY id")]
    fc = orders.load_products({"type": "FeatureCollection", "features": items}, bordeaux_dsn)
    assert [p["id"] for p in fc] == [p["id"] for p in by_id]
    assert orders.load_products({"products": [{"id": ids[0]}]}, bordeaux_dsn)[0]["id"] == ids[0]
    with pytest.raises(InputError, match="not in the catalogue: nope"):
        orders.load_products(["nope"], bordeaux_dsn)
    with pytest.raises(InputError, match="no product"):
        orders.load_products([], bordeaux_dsn)
    with pytest.raises(InputError):
        orders.load_products({"a": 1}, bordeaux_dsn)


def test_plan_runs_groups_by_tile_and_covers_the_dates() -> None:
    def p(pid: str, day: str, tile: str, bbox: list[float]) -> dict:
        return {
            "id": pid,
            "collection": "sentinel-2-l2a",
            "datetime": f"{day}T10:00:00Z",
            "tile": tile,
            "bbox": bbox,
            "href": "s3://eodata/x",
        }

    runs = orders.plan_runs(
        [
            p("a", "2023-06-01", "T30TXQ", [0, 44, 1, 45]),
            p("b", "2023-06-20", "T30TXQ", [0.5, 44.5, 1.5, 45.5]),
            p("c", "2023-06-05", "T31TCJ", [1, 43, 2, 44]),
        ],
        {"model": "irmad"},
    )
    assert runs == [
        (
            ["a", "b"],
            {
                "collection": "sentinel-2-l2a",
                "bbox": [0.5, 44.5, 1.0, 45.0],
                "start": "2023-06-01",
                "end": "2023-06-20",
                "tile": "T30TXQ",
                "model": "irmad",
            },
        ),
        (
            ["c"],
            {
                "collection": "sentinel-2-l2a",
                "bbox": [1.0, 43.0, 2.0, 44.0],
                "start": "2023-06-05",
                "end": "2023-06-05",
                "tile": "T31TCJ",
                "model": "irmad",
            },
        ),
    ]


def test_overall_status() -> None:
    assert orders.overall([]) == "created"
    assert orders.overall(["success", "success"]) == "success"
    assert orders.overall(["success", "running"]) == "running"
    assert orders.overall(["success", "failed"]) == "partial"
    assert orders.overall(["failed"]) == "failed"


@pytest.fixture
def platform_home(shared_platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test session's shared platform (the Bordeaux sample catalogued), as CANDELA_HOME."""
    p = shared_platform
    for k in [k for k in os.environ if k.startswith("CANDELA_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("CANDELA_HOME", str(p.home))
    from candela import embedded

    deadline = time.monotonic() + 120  # a loaded machine answers slowly at first
    while embedded.health(p.settings(), timeout=10) is None and time.monotonic() < deadline:
        time.sleep(1)
    return p.home


@pytest.mark.slow
@pytest.mark.integration
def test_order_create_and_status_on_the_platform(platform_home: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps(["oscd-bordeaux-20160504", "oscd-bordeaux-20171026"]))
    runner = CliRunner()
    r = runner.invoke(
        orders.app,
        [
            "create",
            "--products",
            f"@{listing}",
            "--workflow",
            "s2_change_detection",
            "--conf",
            '{"model": "cva"}',
            "--user",
            "alice",
            "--wait",
        ],
    )
    assert r.exit_code == 0, r.output
    oid = next(w for w in r.output.split() if w.startswith("ord-"))
    r = runner.invoke(orders.app, ["status", oid, "--json"])
    assert r.exit_code == 0, r.output
    order = json.loads(r.output)
    assert order["status"] == "success" and order["user"] == "alice"
    assert len(order["runs"]) == 1 and order["runs"][0]["state"] == "success"
    assert order["runs"][0]["products"] == ["oscd-bordeaux-20160504", "oscd-bordeaux-20171026"]
    r = runner.invoke(orders.app, ["create", "--products", f"@{listing}", "--workflow", "nope"])
    assert r.exit_code == 2 and "unknown workflow 'nope'" in r.output
    r = runner.invoke(orders.app, ["status", "ord-000000000000"])
    assert r.exit_code == 2 and "no order" in r.output
