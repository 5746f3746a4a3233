"""BigEarthNet S2 patch folders (real L2A patch shipped in data/bigearthnet)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from preprocess_helpers import BIGEARTHNET, band_file, read_band
from rio_cogeo.cogeo import cog_validate


def test_bigearthnet_patch(run_service, tmp_path: Path) -> None:
    out = tmp_path / "ben.tif"
    rc, res = run_service("--product", BIGEARTHNET, "--output", out, "--reflectance")
    assert rc == 0, res
    assert res["layout"] == "bigearthnet" and res["level"] == "L2A"
    assert res["product_id"] == BIGEARTHNET.name
    assert res["datetime"] == "2017-06-13T10:10:31Z"  # from …_labels_metadata.json
    assert res["crs"] == "EPSG:32633"
    assert (res["width"], res["height"]) == (120, 120)
    assert res["valid_mask"] is None  # BigEarthNet ships no SCL
    assert res["transform"] == [10.0, 0.0, 404400.0, 0.0, -10.0, 5342400.0]
    assert cog_validate(str(out))[0]
    with rasterio.open(out) as ds:
        stack = ds.read()
    np.testing.assert_array_equal(stack[0], read_band(band_file(BIGEARTHNET, "B02")))
    # UTM 20 m -> 10 m on aligned grids: each 20 m pixel becomes 2x2 pixels; bilinear keeps means
    b11 = read_band(band_file(BIGEARTHNET, "B11")).astype(float)
    assert abs(stack[8].mean() - b11.mean()) / b11.mean() < 0.01


def test_bigearthnet_nearest_replicates_20m_pixels(run_service, tmp_path: Path) -> None:
    out = tmp_path / "ben_nn.tif"
    rc, _ = run_service(
        "--product",
        BIGEARTHNET,
        "--output",
        out,
        "--bands",
        "B02",
        "B05",
        "--resampling",
        "nearest",
    )
    assert rc == 0
    b05 = read_band(band_file(BIGEARTHNET, "B05"))
    with rasterio.open(out) as ds:
        got = ds.read(2)
    np.testing.assert_array_equal(got, np.repeat(np.repeat(b05, 2, axis=0), 2, axis=1))
