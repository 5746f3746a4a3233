"""Sentinel-2 SAFE metadata (MTD_MSIL1C.xml / MTD_MSIL2A.xml).

No real SAFE product is available offline: the MTD files are written by the ``make_safe`` fixture
(see conftest.py), modelled on the documented product format.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from shapely.geometry import Point, shape

from candela_sdk.sentinel2 import MetadataError, parse_footprint, parse_mtd
from candela_search.ingest import recognise
from candela_search.records import Skipped


def test_l2a_metadata_fields(make_safe) -> None:
    safe = make_safe(level="L2A", baseline="05.09", cloud=12.5)
    md = parse_mtd((safe / "MTD_MSIL2A.xml").read_bytes())
    assert md.level == "L2A" and md.collection == "sentinel-2-l2a"
    assert md.start_time == dt.datetime(2018, 8, 15, 10, 56, 19, 24000, tzinfo=dt.UTC)
    assert md.processing_baseline == "05.09"
    assert md.datatake_id == "GS2B_20180815T105619_007564_N05.09"
    assert md.absolute_orbit == 7564 and md.relative_orbit == 94
    assert md.orbit_direction == "descending"
    assert md.platform == "sentinel-2b"
    assert md.cloud_cover == pytest.approx(12.5)
    assert md.quantification_value == 10000
    # BOA_ADD_OFFSET band_id 8 is B8A, 9 is B09 (Spectral_Information's physicalBand)
    assert set(md.add_offsets) == {
        "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"
    }  # fmt: skip
    assert all(v == -1000 for v in md.add_offsets.values())
    # EXT_POS_LIST is "lat lon": the ring must come out as (lon, lat) around Bordeaux
    lons = [p[0] for p in md.footprint]
    lats = [p[1] for p in md.footprint]
    assert -1.8 < min(lons) < max(lons) < -0.3
    assert 44.1 < min(lats) < max(lats) < 45.2
    assert md.footprint[0] == md.footprint[-1]
    assert any(f.endswith("R10m/T30TXQ_20180815T105619_B02_10m") for f in md.image_files)


def test_l1c_old_baseline_has_no_offsets(make_safe) -> None:
    safe = make_safe(level="L1C", baseline="02.07", spacecraft="Sentinel-2A")
    md = parse_mtd((safe / "MTD_MSIL1C.xml").read_bytes())
    assert md.level == "L1C" and md.collection == "sentinel-2-l1c"
    assert md.quantification_value == 10000
    assert md.add_offsets == {}


def test_l1c_new_baseline_radio_offsets(make_safe) -> None:
    safe = make_safe(level="L1C", baseline="04.00")
    md = parse_mtd((safe / "MTD_MSIL1C.xml").read_bytes())
    assert md.add_offsets["B02"] == -1000 and md.add_offsets["B12"] == -1000


def test_safe_folder_becomes_stac_item(make_safe) -> None:
    safe = make_safe(level="L2A", baseline="05.09", cloud=7.25)
    [rec] = recognise(safe)
    assert rec.id == safe.name.removesuffix(".SAFE")
    assert rec.collection == "sentinel-2-l2a"
    assert rec.tile == "T30TXQ" and rec.processing_baseline == "05.09"
    assert rec.datatake == "GS2B_20180815T105619_007564"  # baseline suffix removed
    assert rec.href == safe.resolve().as_uri()
    props = rec.item["properties"]
    assert props["eo:cloud_cover"] == pytest.approx(7.25)
    assert props["s2:mgrs_tile"] == "30TXQ" and props["grid:code"] == "MGRS-30TXQ"
    assert props["processing:level"] == "L2A" and props["processing:version"] == "05.09"
    assert props["platform"] == "sentinel-2b"
    # band assets at their finest resolution, with the scale/offset of baseline >= 04.00
    b02 = rec.item["assets"]["B02"]
    assert b02["href"].endswith("/IMG_DATA/R10m/T30TXQ_20180815T105619_B02_10m.jp2")
    assert b02["raster:scale"] == pytest.approx(1e-4)
    assert b02["raster:offset"] == pytest.approx(-0.1)
    assert rec.item["assets"]["B05"]["href"].endswith("_B05_20m.jp2")
    assert rec.item["assets"]["B01"]["href"].endswith("_B01_60m.jp2")
    # footprint: counter-clockwise polygon containing Bordeaux
    geom = shape(rec.item["geometry"])
    assert geom.exterior.is_ccw
    assert geom.contains(Point(-0.58, 44.84))
    json.dumps(rec.item)  # plain JSON


def test_safe_zip(make_safe) -> None:
    z = make_safe(level="L1C", baseline="02.07", zipped=True)
    [rec] = recognise(z)
    assert rec.collection == "sentinel-2-l1c"
    assert rec.href.endswith(".zip")
    assert rec.item["assets"]["product"]["type"] == "application/zip"
    assert "B02" not in rec.item["assets"]  # no hrefs into a zip
    assert "B02" in rec.item["properties"]["candela:bands"]


def test_broken_mtd_is_skipped_with_reason(make_safe) -> None:
    safe = make_safe(level="L2A")
    mtd = safe / "MTD_MSIL2A.xml"
    mtd.write_text(
        mtd.read_text()
        .replace("<EXT_POS_LIST>", "<EXT_POS_LIST_X>")
        .replace("</EXT_POS_LIST>", "</EXT_POS_LIST_X>")
    )
    skipped: list[Skipped] = []
    assert recognise(safe, skipped) == []
    assert len(skipped) == 1 and "EXT_POS_LIST" in skipped[0].reason

    mtd.write_text("<Level-2A_User_Product><unclosed>")
    skipped.clear()
    assert recognise(safe, skipped) == []
    assert "not well-formed XML" in skipped[0].reason


def test_footprint_parsing() -> None:
    ring = parse_footprint("45.0 -1.0 45.0 0.0 44.0 0.0 44.0 -1.0")
    assert ring[0] == (-1.0, 45.0) and ring[-1] == ring[0] and len(ring) == 5
    with pytest.raises(MetadataError, match="not lat/lon pairs"):
        parse_footprint("45.0 -1.0 45.0")
    with pytest.raises(MetadataError, match="not a latitude/longitude"):
        parse_footprint("4500000 300000 4500000 400000 4400000 400000 4400000 300000")
