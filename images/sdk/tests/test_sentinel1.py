"""Sentinel-1 backscatter: layouts, unit detection, speckle filter, grid, pairing in time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from candela_sdk import sentinel1 as s1
from candela_sdk.errors import InputError

REPO = Path(__file__).resolve().parents[3]
FLOODS = REPO / "data/fusion/sen1floods11/Spain_7370579_S1Hand.tif"
BEN_S1 = REPO / "data/bigearthnet/S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"
CR_S1 = REPO / "data/fusion/sen12mscr/s1/ROIs1970_fall_139_p839.tif"


def test_layouts_read_vv_vh_in_db() -> None:
    floods = s1.read_s1(FLOODS)
    assert floods.layout == "sen1floods11" and floods.shape == (512, 512)
    med = np.nanmedian(floods.data, axis=(1, 2))
    assert -20 < med[0] < 0 and med[1] < med[0]  # VH darker than VV, both in dB
    ben = s1.read_s1(BEN_S1)
    assert ben.layout == "bigearthnet" and ben.shape == (120, 120)
    assert ben.acquired == dt.datetime(2017, 6, 13, 16, 50, 43, tzinfo=dt.UTC)
    cr = s1.read_s1(CR_S1)
    assert cr.layout == "sen12mscr" and cr.shape == (256, 256)


def test_unit_detection_converts_linear_and_refuses_other_ranges(tmp_path: Path) -> None:
    db = s1.read_s1(FLOODS).data[0]
    assert s1.detect_unit(db) == "dB"
    lin = s1.to_linear(db)
    assert s1.detect_unit(lin) == "linear"
    np.testing.assert_allclose(s1.to_db(lin)[np.isfinite(db)], db[np.isfinite(db)], atol=1e-3)
    # a linear file is converted, and the conversion is said
    path = tmp_path / "linear_S1Hand.tif"
    prof = dict(driver="GTiff", width=64, height=64, count=2, dtype="float32", crs="EPSG:32633")
    with rasterio.open(path, "w", transform=from_origin(0, 640, 10, 10), **prof) as ds:
        ds.write(np.stack([lin[:64, :64], s1.to_linear(s1.read_s1(FLOODS).data[1][:64, :64])]))
        ds.descriptions = ("VV", "VH")
    scene = s1.read_s1(path)
    assert scene.notes and "converted to dB" in scene.notes[0]
    np.testing.assert_allclose(scene.data[0], db[:64, :64], atol=1e-3)
    # amplitudes in DN fit neither unit
    with pytest.raises(InputError, match="unexpected unit"):
        s1.detect_unit(np.full((10, 10), 1500.0))


def test_missing_polarisation_is_named(tmp_path: Path) -> None:
    path = tmp_path / "vv_only.tif"
    prof = dict(driver="GTiff", width=8, height=8, count=2, dtype="float32", crs="EPSG:32633")
    with rasterio.open(path, "w", transform=from_origin(0, 80, 10, 10), **prof) as ds:
        ds.write(np.full((2, 8, 8), -12.0, dtype="float32"))
        ds.descriptions = ("VV", "HH")
    with pytest.raises(InputError, match="polarisation VH missing"):
        s1.read_s1(path)


def test_lee_filter_reduces_speckle_and_keeps_mean() -> None:
    db = s1.read_s1(CR_S1).data[0][:128, :128]
    out = s1.lee_filter(db, 5)
    assert out.shape == db.shape
    assert np.nanstd(out) < np.nanstd(db)
    assert abs(np.nanmean(s1.to_linear(out)) - np.nanmean(s1.to_linear(db))) < 0.1 * np.nanmean(
        s1.to_linear(db)
    )


def test_to_grid_reports_coregistration_and_refuses_no_overlap() -> None:
    scene = s1.read_s1(BEN_S1)
    t = scene.transform
    # a 20 m grid shifted by a quarter pixel: resampled, offset reported
    grid = s1.TargetGrid(scene.crs, from_origin(t.c + 5, t.f, 20, 20), 50, 50)
    out, report = s1.to_grid(scene, grid)
    assert out.shape == (2, 50, 50)
    assert report["reprojected"] is False and report["grid_offset_px"] == [-0.25, 0.0]
    assert report["overlap_fraction"] > 0.9
    far = s1.TargetGrid(scene.crs, from_origin(t.c + 1e5, t.f, 10, 10), 20, 20)
    with pytest.raises(InputError, match="does not overlap"):
        s1.to_grid(scene, far)
    # another CRS: reprojected
    wgs = s1.TargetGrid("EPSG:4326", from_origin(13.715, 48.226, 0.0002, 0.0002), 40, 40)
    out, report = s1.to_grid(scene, wgs)
    assert report["reprojected"] is True and np.isfinite(out).any()


def test_pairing_window() -> None:
    t = dt.datetime(2017, 6, 13, 10, tzinfo=dt.UTC)
    cands = [("a", t + dt.timedelta(days=4)), ("b", t - dt.timedelta(days=2)), ("c", t)]
    assert s1.nearest(t, cands)[0] == "c"
    assert s1.nearest(t, cands[:2])[0] == "b"
    assert s1.nearest(t, [("x", t + dt.timedelta(days=11))]) is None
    with pytest.raises(InputError, match="2017-06-25 and Sentinel-2 acquired 2017-06-13"):
        s1.check_pair(t, t + dt.timedelta(days=12))
    assert s1.check_pair(t, t + dt.timedelta(days=1)) == 1.0
