"""Change polygons (candela_sdk.vector): areas, mean probability, and the files GIS tools open."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from candela_sdk.errors import InputError
from candela_sdk.vector import change_polygons, geojson_text, kml_text, write_geopackage

UTM = "EPSG:32630"


def _rasters(tmp_path: Path) -> tuple[Path, Path]:
    mask = np.zeros((40, 50), dtype="uint8")
    mask[5:15, 5:15] = 1  # 100 px, a hole of 4 px in it
    mask[9:11, 9:11] = 0
    mask[30:32, 40:45] = 1  # 10 px
    mask[20, 20] = 1  # 1 px
    mask[20, 21] = 1  # diagonal neighbours are separate areas (4-connectivity)
    mask[21, 22] = 1
    mask[0, :] = 255  # no data
    prob = np.where(mask == 1, 0.8, 0.1).astype("float32")
    prob[30:32, 40:45] = np.linspace(0.6, 1.0, 10).reshape(2, 5)
    prob[0, :] = -1
    profile = {"driver": "GTiff", "width": 50, "height": 40, "count": 1, "crs": UTM,
               "transform": from_origin(700000, 4960000, 10, 10)}  # fmt: skip
    mp, pp = tmp_path / "change_mask.tif", tmp_path / "change_probability.tif"
    with rasterio.open(mp, "w", dtype="uint8", nodata=255, **profile) as ds:
        ds.write(mask, 1)
    with rasterio.open(pp, "w", dtype="float32", nodata=-1, **profile) as ds:
        ds.write(prob, 1)
    return mp, pp


def test_one_polygon_per_area_with_area_and_mean_probability(tmp_path: Path) -> None:
    mp, pp = _rasters(tmp_path)
    feats = change_polygons(mp, pp)
    props = [f["properties"] for f in feats]
    assert [p["pixels"] for p in props] == [96, 10, 2, 1]  # largest first
    assert [p["id"] for p in props] == [1, 2, 3, 4]
    assert props[0]["area_ha"] == pytest.approx(0.96)  # 96 px of 100 m²
    assert props[0]["mean_probability"] == pytest.approx(0.8)
    assert props[1]["mean_probability"] == pytest.approx(0.8, abs=1e-4)  # mean of 0.6..1.0
    assert len(feats[0]["geometry"]["coordinates"]) == 2  # the hole is kept
    lon, lat = feats[0]["geometry"]["coordinates"][0][0]
    assert -1.0 < lon < -0.3 and 44.0 < lat < 45.0  # WGS 84, near Bordeaux
    big = change_polygons(mp, pp, min_pixels=5)
    assert [f["properties"]["pixels"] for f in big] == [96, 10]
    assert change_polygons(mp)[0]["properties"]["mean_probability"] is None
    with pytest.raises(InputError, match="noise"):
        change_polygons(mp, pp, max_polygons=2)


def test_no_change_no_polygon(tmp_path: Path) -> None:
    mp, _ = _rasters(tmp_path)
    with rasterio.open(mp, "r+") as ds:
        ds.write(np.zeros((40, 50), dtype="uint8"), 1)
    assert change_polygons(mp) == []


def test_geopackage_geojson_and_kml_open_with_gdal(tmp_path: Path) -> None:
    import pyogrio

    mp, pp = _rasters(tmp_path)
    feats = change_polygons(mp, pp)
    gpkg = tmp_path / "changes.gpkg"
    write_geopackage(gpkg, feats)
    assert not list(tmp_path.glob("*.tmp"))
    info = pyogrio.read_info(gpkg)
    assert info["features"] == 4 and info["crs"] == "EPSG:4326"
    assert info["geometry_type"] == "MultiPolygon"
    meta, _fids, geoms, fields = pyogrio.raw.read(gpkg)
    names = list(meta["fields"])
    assert names == ["id", "area_ha", "mean_probability", "pixels"]
    assert list(fields[names.index("pixels")]) == [96, 10, 2, 1]
    assert fields[names.index("area_ha")][0] == pytest.approx(0.96)
    assert len(geoms) == 4
    (tmp_path / "changes.geojson").write_text(geojson_text(feats))
    assert pyogrio.read_info(tmp_path / "changes.geojson")["features"] == 4
    (tmp_path / "changes.kml").write_text(kml_text(feats))
    kml = pyogrio.read_info(tmp_path / "changes.kml")
    assert kml["features"] == 4
    doc = json.loads(geojson_text(feats))
    assert doc["features"][0]["properties"]["area_ha"] == pytest.approx(0.96)
