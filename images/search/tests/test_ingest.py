"""Recognising products on disk: OSCD, BigEarthNet, STAC items, GeoTIFFs, and what is skipped."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box, shape

from candela_search.ingest import recognise, scan
from candela_search.records import Skipped

BIGEARTHNET = Path(__file__).resolve().parents[3] / "data" / "bigearthnet"


def test_oscd_bordeaux_two_products(oscd_bordeaux: Path) -> None:
    skipped: list[Skipped] = []
    recs = recognise(oscd_bordeaux, skipped)
    assert skipped == []
    assert [r.id for r in recs] == ["oscd-bordeaux-20160504", "oscd-bordeaux-20171026"]
    first, second = recs
    # dates from dates.txt, not from the processing date in the imgs_1 file names
    assert first.datetime.date() == dt.date(2016, 5, 4)
    assert second.datetime.date() == dt.date(2017, 10, 26)
    # imgs_2 uses compact names: T30TXQ_20171026T110131_… is the sensing time
    assert second.datetime == dt.datetime(2017, 10, 26, 11, 1, 31, tzinfo=dt.UTC)
    for rec in recs:
        assert rec.collection == "sentinel-2-l1c"
        assert rec.tile == "T30TXQ"
        assert rec.href.endswith(("/imgs_1", "/imgs_2"))
        assert len([k for k in rec.item["assets"] if k.startswith("B")]) == 13
        assert rec.item["properties"]["s2:mgrs_tile"] == "30TXQ"
    assert first.platform == "sentinel-2a"
    assert second.platform == "unknown"
    assert first.item["properties"]["sat:absolute_orbit"] == 4524
    # footprint = the B02 raster bounds (EPSG:4326), within 1e-9 degrees
    b02 = next((oscd_bordeaux / "imgs_1").glob("*_B02.tif"))
    with rasterio.open(b02) as ds:
        expected = tuple(ds.bounds)
    assert first.bbox == pytest.approx(expected, abs=1e-9)
    fp = shape(first.item["geometry"])
    assert fp.area == pytest.approx(box(*expected).area, rel=1e-9)
    # and it covers the city outline shipped with the pair
    outline = json.loads((oscd_bordeaux / "bordeaux.geojson").read_text())
    city = shape(outline["features"][0]["geometry"])
    assert fp.buffer(1e-9).contains(city)


def test_oscd_without_dates_is_skipped(tmp_path: Path, oscd_bordeaux: Path) -> None:
    city = tmp_path / "nowhere"
    (city / "imgs_1").mkdir(parents=True)
    (city / "imgs_2").mkdir()
    (city / "dates.txt").write_text("date_1: 20160504\n")
    skipped: list[Skipped] = []
    assert recognise(city, skipped) == []
    assert "no date_2" in skipped[0].reason
    (city / "dates.txt").write_text("date_1: 20160504\ndate_2: 20171026\n")
    skipped.clear()
    assert recognise(city, skipped) == []
    assert "imgs_1 of nowhere has no B02 band file" in skipped[0].reason


def test_bigearthnet_s2_and_s1_patches() -> None:
    recs = {r.collection: r for r in recognise(BIGEARTHNET)}
    s2, s1 = recs["sentinel-2-l2a"], recs["sentinel-1-grd"]
    assert s2.id == "S2A_MSIL2A_20170613T101031_87_48"
    assert s2.datetime == dt.datetime(2017, 6, 13, 10, 10, 31, tzinfo=dt.UTC)
    assert s2.tile == "T33UUP" and s2.processing_baseline == "02.05"
    assert s2.platform == "sentinel-2a"
    assert s2.item["properties"]["proj:code"] == "EPSG:32633"
    assert s1.datetime == dt.datetime(2017, 6, 13, 16, 50, 43, tzinfo=dt.UTC)
    assert s1.tile == "T33UUP" and s1.platform == "sentinel-1a"
    assert s1.item["properties"]["sar:polarizations"] == ["VV", "VH"]
    assert s1.item["properties"]["sat:absolute_orbit"] == 17018
    assert s1.item["properties"]["bigearthnet:corresponding_s2_patch"] == s2.id
    # same 1200 m × 1200 m UTM patch: same footprint, ~1.2 km on each side
    a, b = shape(s2.item["geometry"]), shape(s1.item["geometry"])
    assert a.symmetric_difference(b).area < 1e-12
    w, s, e, n = s2.bbox
    lat = (s + n) / 2
    width_km = (e - w) * 111.32 * np.cos(np.radians(lat))
    height_km = (n - s) * 110.57
    assert width_km == pytest.approx(1.2, rel=0.03)
    assert height_km == pytest.approx(1.2, rel=0.03)
    # a UTM square is a slightly rotated quadrilateral in lon/lat, not its bbox
    assert a.area < box(*s2.bbox).area * 0.999


def test_stac_item_file_round_trip(tmp_path: Path, oscd_bordeaux: Path) -> None:
    recs = recognise(oscd_bordeaux)
    single = tmp_path / "one.json"
    single.write_text(json.dumps(recs[0].item))
    fc = tmp_path / "many.geojson"
    fc.write_text(json.dumps({"type": "FeatureCollection", "features": [r.item for r in recs]}))
    [one] = recognise(single)
    assert one.id == recs[0].id and one.tile == "T30TXQ"
    assert one.collection == "sentinel-2-l1c" and one.datetime == recs[0].datetime
    assert one.href == single.resolve().as_uri()
    many = recognise(fc)
    assert [r.id for r in many] == [r.id for r in recs]


def test_stac_item_relative_assets_and_unknown_collection(tmp_path: Path) -> None:
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "S2B_MSIL2A_20200626T095029_R079_T34VFN_20200626T123234",
        "collection": "sentinel-2-c1-l2a",
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[22, 60], [24, 60], [24, 61], [22, 61], [22, 60]]],
        },
        "bbox": [22, 60, 24, 61],
        "properties": {
            "datetime": "2020-06-26T09:50:29.024Z",
            "eo:cloud_cover": 0.04,
            "s2:mgrs_tile": "34VFN",
            "s2:processing_baseline": "02.14",
            "s2:datatake_id": "GS2B_20200626T095029_017265_N02.14",
        },
        "links": [],
        "assets": {"B02": {"href": "bands/B02.tif"}},
    }
    path = tmp_path / "item.json"
    path.write_text(json.dumps(item))
    [rec] = recognise(path)
    assert rec.collection == "sentinel-2-l2a" and rec.tile == "T34VFN"
    assert rec.cloud_cover == pytest.approx(0.04)
    assert rec.datatake == "GS2B_20200626T095029_017265"
    assert rec.item["assets"]["B02"]["href"] == (tmp_path / "bands/B02.tif").resolve().as_uri()

    item["collection"] = "landsat-c2-l2"
    path.write_text(json.dumps(item))
    skipped: list[Skipped] = []
    assert recognise(path, skipped) == []
    assert "landsat-c2-l2" in skipped[0].reason


def _write_tif(path: Path, crs: str | None, tags: dict[str, str] | None = None) -> None:
    profile = {
        "driver": "GTiff",
        "width": 64,
        "height": 48,
        "count": 1,
        "dtype": "uint16",
        "tiled": True,
        "blockxsize": 32,
        "blockysize": 32,
    }
    if crs:
        profile |= {"crs": crs, "transform": Affine(20, 0, 600000, 0, -20, 4990000)}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.arange(64 * 48, dtype="uint16").reshape(1, 48, 64))
        if tags:
            ds.update_tags(**tags)


def test_single_geotiff(tmp_path: Path) -> None:
    tif = tmp_path / "S2B_MSIL2A_20200115T103309_N0213_R108_T31UDQ_stack.tif"
    _write_tif(tif, "EPSG:32631", {"CLOUD_COVER": "4.5"})
    [rec] = recognise(tif)
    assert rec.collection == "sentinel-2-l2a"
    assert rec.datetime == dt.datetime(2020, 1, 15, 10, 33, 9, tzinfo=dt.UTC)
    assert rec.tile == "T31UDQ" and rec.processing_baseline == "02.13"
    assert rec.cloud_cover == pytest.approx(4.5)
    assert rec.item["properties"]["proj:code"] == "EPSG:32631"
    assert rec.item["properties"]["proj:shape"] == [48, 64]
    w, s, e, n = rec.bbox
    assert 4.2 < w < e < 4.3 and 45.0 < s < n < 45.1  # 1280 m × 960 m near 4.27°E 45.05°N


def test_unknown_things_are_skipped_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a product")
    _write_tif(tmp_path / "plain.tif", None)
    _write_tif(tmp_path / "S2B_MSIL2A_nodate.tif", "EPSG:32631")
    _write_tif(tmp_path / "some_raster_20200115T103309.tif", "EPSG:32631")
    skipped: list[Skipped] = []
    assert recognise(tmp_path, skipped) == []
    reasons = {s.path.name: s.reason for s in skipped}
    assert "no product found" in reasons["empty"]
    assert "not a georeferenced raster" in reasons["plain.tif"]
    assert "acquisition date" in reasons["S2B_MSIL2A_nodate.tif"]
    assert "collection" in reasons["some_raster_20200115T103309.tif"]
    assert "notes.txt" not in reasons  # loose non-product files inside a folder are ignored

    skipped.clear()
    assert recognise(tmp_path / "notes.txt", skipped) == []
    assert "unknown kind of file" in skipped[0].reason
    skipped.clear()
    assert recognise(tmp_path / "missing", skipped) == []
    assert skipped[0].reason == "does not exist"


def test_scan_walks_folders(tmp_path: Path, oscd_bordeaux: Path, make_safe) -> None:
    root = tmp_path / "archive"
    (root / "oscd").mkdir(parents=True)
    shutil.copytree(oscd_bordeaux, root / "oscd" / "bordeaux")
    make_safe(level="L1C", baseline="02.07", folder=root)
    (root / "README.md").write_text("archive")
    result = scan([root, tmp_path / "missing"])
    assert sorted(r.source for r in result.records) == ["oscd", "oscd", "safe"]
    assert [s.reason for s in result.skipped] == ["does not exist"]


def test_recognised_carries_its_skips(tmp_path: Path, oscd_bordeaux: Path) -> None:
    found = recognise(oscd_bordeaux)
    assert len(found.records) == 2 and found.skipped == []
    found = recognise(tmp_path / "missing")
    assert found == [] and [s.reason for s in found.skipped] == ["does not exist"]
