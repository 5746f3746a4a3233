"""End to end on the real OSCD Bordeaux pair, through the service contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from preprocess_helpers import BORDEAUX, band_file, read_band
from rasterio.enums import Resampling
from rio_cogeo.cogeo import cog_validate

from candela_sdk.cog import is_cog
from candela_sdk.grids import grids_match

DEFAULT = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"]


@pytest.mark.parametrize(
    ("folder", "date"), [("imgs_1", "2016-05-04T00:00:00Z"), ("imgs_2", "2017-10-26T00:00:00Z")]
)
def test_bordeaux_stack(run_service, tmp_path: Path, folder: str, date: str) -> None:
    out = tmp_path / "out" / f"bordeaux_{folder}.tif"
    rc, res = run_service("--product", BORDEAUX / folder, "--output", out)
    assert rc == 0, res
    assert res["outcome"] == "done"
    assert res["output"] == out.as_uri()
    assert res["item"] == out.with_suffix(".json").as_uri()
    assert res["datetime"] == date  # from dates.txt, not from the file names
    assert res["layout"] == "oscd"
    assert res["bands"] == DEFAULT
    assert res["crs"] == "EPSG:4326"
    assert res["valid_mask"] is None
    assert res["resampled_bands"] == ["B05", "B06", "B07", "B8A", "B11", "B12"]
    assert 0.99 <= res["valid_fraction"] <= 1.0

    ok, errors = is_cog(out)
    assert ok, errors
    valid, cog_errors, _warnings = cog_validate(str(out))
    assert valid, cog_errors
    src = BORDEAUX / folder
    b02 = read_band(band_file(src, "B02"))
    with rasterio.open(out) as ds:
        assert ds.count == 10
        assert list(ds.descriptions) == DEFAULT
        assert ds.nodata == 0
        assert ds.dtypes[0] == "uint16"
        assert (res["height"], res["width"]) == ds.shape == b02.shape
        with rasterio.open(band_file(src, "B02")) as ref:
            assert ds.transform.almost_equals(ref.transform)
        stack = ds.read()
    # the reference band is copied, not resampled
    np.testing.assert_array_equal(stack[0], b02)
    np.testing.assert_array_equal(stack[1], read_band(band_file(src, "B03")))
    # 20 m bands: resampled onto the 10 m grid, statistically the same
    for i, band in enumerate(DEFAULT):
        if band in ("B05", "B06", "B07", "B8A", "B11", "B12"):
            native = read_band(band_file(src, band)).astype(float)
            got = stack[i].astype(float)
            assert got.shape == b02.shape
            assert abs(got.mean() - native.mean()) / native.mean() < 0.01, band
            # bilinear smooths a little: less variance, never more
            assert 0.8 < got.std() / native.std() <= 1.0, band
            # aggregated back to 20 m it matches the native band
            with rasterio.open(out) as ds:
                back = ds.read(i + 1, out_shape=native.shape, resampling=Resampling.average)
            assert np.corrcoef(back.ravel(), native.ravel())[0, 1] > 0.9, band
            # bilinear never leaves the range of its inputs
            assert native.min() <= got.min() and got.max() <= native.max(), band

    item = json.loads(out.with_suffix(".json").read_text())
    assert item["id"] == out.stem
    assert [b["name"] for b in item["assets"]["data"]["eo:bands"]] == DEFAULT
    assert item["assets"]["data"]["href"] == out.as_uri()
    prov = item["properties"]["candela:provenance"]
    assert prov["product"] == (BORDEAUX / folder).as_uri()
    assert prov["parameters"]["bands"] == DEFAULT
    assert prov["code_version"]
    assert item["properties"]["start_datetime"] == date
    assert item["properties"]["proj:shape"] == [res["height"], res["width"]]


def test_bordeaux_dates_share_a_grid(run_service, tmp_path: Path) -> None:
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    assert (
        run_service("--product", BORDEAUX / "imgs_1", "--output", a, "--bands", "B02", "B05")[0]
        == 0
    )
    assert (
        run_service("--product", BORDEAUX / "imgs_2", "--output", b, "--bands", "B02", "B05")[0]
        == 0
    )
    assert grids_match(a, b) == (True, "")


def test_block_size_does_not_change_the_result(run_service, tmp_path: Path) -> None:
    """Window-by-window warping gives the same pixels as one big window."""
    outs = []
    for block in (64, 1024):
        out = tmp_path / f"b{block}.tif"
        rc, _ = run_service(
            "--product",
            BORDEAUX / "imgs_1",
            "--output",
            out,
            "--block-size",
            block,
            "--bands",
            "B02",
            "B05",
            "B11",
            "B8A",
        )
        assert rc == 0
        with rasterio.open(out) as ds:
            outs.append(ds.read())
    np.testing.assert_array_equal(outs[0], outs[1])


def test_reflectance_scale_offset(run_service, tmp_path: Path) -> None:
    out = tmp_path / "r.tif"
    rc, res = run_service(
        "--product", BORDEAUX / "imgs_1", "--output", out, "--reflectance", "--bands", "B02", "B11"
    )
    assert rc == 0
    assert res["reflectance"] == {"scales": [1e-4, 1e-4], "offsets": [0.0, 0.0]}
    with rasterio.open(out) as ds:
        assert ds.scales == (1e-4, 1e-4) and ds.offsets == (0.0, 0.0)
        refl = ds.read(1).astype(float) * ds.scales[0] + ds.offsets[0]
    assert 0.0 < np.median(refl) < 0.5  # plausible top-of-atmosphere blue reflectance


def test_console_script(tmp_path: Path) -> None:
    """The installed ``candela-preprocess`` entry point: JSON on the last stdout line."""
    exe = Path(sys.executable).with_name("candela-preprocess")
    out = tmp_path / "cli.tif"
    proc = subprocess.run(
        [str(exe), "--product", str(BORDEAUX / "imgs_2"), "--output", str(out), "--bands", "B02"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bands"] == ["B02"] and result["output"] == out.as_uri()
