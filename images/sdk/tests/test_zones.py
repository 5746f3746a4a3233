"""Zones files (GeoJSON and GeoPackage) and zone statistics on a change mask."""

from __future__ import annotations

import json
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely import to_wkb
from shapely.geometry import box

from candela_sdk.errors import InputError
from candela_sdk.zones import grid_zones, load_zones, read_zones, zone_statistics

# a 10 x 10 pixel mask of 10 m pixels in UTM 30N; the west half changed, row 0 nodata
ORIGIN = (500000.0, 4970000.0)


def _mask(path: Path, crs: str | None = "EPSG:32630") -> Path:
    data = np.zeros((10, 10), dtype="uint8")
    data[:, :5] = 1
    data[0, :] = 255
    profile = {"driver": "GTiff", "width": 10, "height": 10, "count": 1, "dtype": "uint8"}
    with rasterio.open(
        path, "w", crs=crs, transform=from_origin(*ORIGIN, 10, 10), nodata=255, **profile
    ) as ds:
        ds.write(data, 1)
    return path


def _west_east() -> list[tuple[str, object]]:
    x, y = ORIGIN
    return [("west", box(x, y - 100, x + 50, y)), ("east", box(x + 50, y - 100, x + 100, y))]


def _geopackage(path: Path) -> Path:
    """A minimal GeoPackage (the tables a reader needs) with the two zones in EPSG:32630."""
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT, srs_id INTEGER PRIMARY KEY,
                organization TEXT, organization_coordsys_id INTEGER, definition TEXT);
            CREATE TABLE gpkg_contents (table_name TEXT PRIMARY KEY, data_type TEXT);
            CREATE TABLE gpkg_geometry_columns (table_name TEXT, column_name TEXT,
                geometry_type_name TEXT, srs_id INTEGER);
            INSERT INTO gpkg_spatial_ref_sys VALUES ('UTM 30N', 32630, 'EPSG', 32630, '');
            INSERT INTO gpkg_contents VALUES ('parcels', 'features');
            INSERT INTO gpkg_geometry_columns VALUES ('parcels', 'geom', 'POLYGON', 32630);
            CREATE TABLE parcels (fid INTEGER PRIMARY KEY, geom BLOB, code TEXT);
            """
        )
        for i, (code, geom) in enumerate(_west_east(), start=1):
            # GeoPackage binary: "GP", version 0, flags (little endian, xy envelope), srs id,
            # envelope minx maxx miny maxy, then WKB
            minx, miny, maxx, maxy = geom.bounds
            header = b"GP" + bytes([0, 0b00000011]) + struct.pack("<i", 32630)
            envelope = struct.pack("<4d", minx, maxx, miny, maxy)
            blob = header + envelope + to_wkb(geom)
            conn.execute("INSERT INTO parcels VALUES (?, ?, ?)", (i, blob, code))
    return path


def test_geojson_and_geopackage_give_the_same_statistics(tmp_path: Path) -> None:
    mask = _mask(tmp_path / "mask.tif")
    features = [
        {
            "type": "Feature",
            "properties": {"code": c},
            "geometry": json.loads(json.dumps(g.__geo_interface__)),
        }
        for c, g in _west_east()
    ]
    doc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "EPSG:32630"}},
        "features": features,
    }
    (tmp_path / "zones.geojson").write_text(json.dumps(doc))
    gpkg = _geopackage(tmp_path / "zones.gpkg")
    results = []
    for uri in (tmp_path / "zones.geojson", gpkg):
        feats, crs = read_zones(str(uri))
        assert crs == "EPSG:32630" and [f["properties"]["code"] for f in feats] == ["west", "east"]
        with rasterio.open(mask) as ds:
            results.append(zone_statistics(feats, crs, ds))
    assert [r["changed_pixels"] for r in results[1]] == [45, 0]  # 9 valid rows x 5 columns
    for a, b in zip(*results, strict=True):
        assert {k: v for k, v in a.items() if k != "zone_id"} == {
            k: v for k, v in b.items() if k != "zone_id"
        }
    west, east = results[0]
    assert west["changed_fraction"] == 1.0 and east["changed_fraction"] == 0.0
    assert west["nodata_pixels"] == 5 and west["valid_area_ha"] == pytest.approx(0.45)


def test_bad_zones_files() -> None:
    with pytest.raises(InputError, match="not valid JSON"):
        load_zones(b"{nope", "z.geojson")
    with pytest.raises(InputError, match="has no feature"):
        load_zones('{"type": "FeatureCollection", "features": []}', "z.geojson")
    with pytest.raises(InputError, match="not a UTF-8 text file"):
        load_zones(b"\xff\xfe\x00garbage", "z.bin")


def test_grid_zones_cover_the_raster(tmp_path: Path) -> None:
    with rasterio.open(_mask(tmp_path / "mask.tif")) as ds:
        cells, crs = grid_zones(ds.crs, ds.bounds, cell_m=50)
        stats = zone_statistics(cells, crs, ds)
    assert crs == "EPSG:32630" and len(cells) == 4  # 100 m x 100 m in 50 m cells
    assert sum(s["valid_pixels"] for s in stats) == 90  # every valid pixel counted once
    assert cells[0]["id"] == "E10000 N99398" and "km cell" in cells[0]["properties"]["name"]
