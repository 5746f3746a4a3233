"""SAFE folders and zips (L1C and L2A).

No real SAFE product is shipped (the smallest is hundreds of MB): these tests build SAFE-*shaped*
products from the real OSCD Bordeaux bands, converted losslessly to JPEG 2000 (JP2OpenJPEG) and
laid out as in ESA's SAFE format, with a minimal but correctly structured MTD_MSIL1C.xml /
MTD_MSIL2A.xml (PSD 14 element paths, baseline 04.00, QUANTIFICATION_VALUE + RADIO_ADD_OFFSET,
BOA_QUANTIFICATION_VALUE + BOA_ADD_OFFSET). The MTD values and the L2A SCL band are synthetic —
see ``preprocess_helpers.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import rasterio
from preprocess_helpers import (
    BORDEAUX,
    band_file,
    build_safe_l2a,
    read_band,
    scl_from_blue,
    zip_safe,
)
from rio_cogeo.cogeo import cog_validate

from candela_preprocess.layouts import open_product
from candela_sdk import storage
from candela_sdk.cog import is_cog

SENSING = "2016-05-04T10:50:32.026000Z"


def test_l1c_folder(run_service, tmp_path: Path, safe_l1c: Path) -> None:
    out = tmp_path / "l1c.tif"
    rc, res = run_service("--product", safe_l1c, "--output", out, "--reflectance")
    assert rc == 0, res
    assert res["layout"] == "safe" and res["level"] == "L1C"
    assert res["product_id"] == safe_l1c.name.removesuffix(".SAFE")
    assert res["datetime"] == SENSING
    assert res["valid_mask"] is None
    # baseline 04.00: reflectance = (DN - 1000) / 10000
    assert res["reflectance"]["scales"] == [1e-4] * 10
    assert np.allclose(res["reflectance"]["offsets"], [-0.1] * 10)
    assert is_cog(out)[0]
    assert cog_validate(str(out))[0]
    with rasterio.open(out) as ds:
        assert ds.count == 10
        np.testing.assert_array_equal(ds.read(1), read_band(band_file(BORDEAUX / "imgs_1", "B02")))
        assert np.allclose(ds.offsets, [-0.1] * 10)
    item = json.loads(out.with_suffix(".json").read_text())
    assert dt.datetime.fromisoformat(item["properties"]["datetime"]) == dt.datetime.fromisoformat(
        SENSING
    )
    assert item["properties"]["candela:provenance"]["processing_baseline"] == "04.00"
    assert item["assets"]["data"]["raster:bands"][0]["offset"] == -0.1


def test_l1c_zip_matches_folder(run_service, tmp_path: Path, safe_l1c: Path) -> None:
    zipped = zip_safe(shutil.copytree(safe_l1c, tmp_path / safe_l1c.name))
    a, b = tmp_path / "folder.tif", tmp_path / "zip.tif"
    assert run_service("--product", safe_l1c, "--output", a, "--bands", "B02", "B8A")[0] == 0
    rc, res = run_service("--product", zipped, "--output", b, "--bands", "B02", "B8A")
    assert rc == 0, res
    assert open_product(str(zipped)).band_paths["B02"].startswith("/vsizip/")
    with rasterio.open(a) as da, rasterio.open(b) as db:
        np.testing.assert_array_equal(da.read(), db.read())


def test_l2a_folder_with_scl_mask(run_service, tmp_path: Path, safe_l2a: Path) -> None:
    out = tmp_path / "l2a.tif"
    rc, res = run_service("--product", safe_l2a, "--output", out, "--reflectance")
    assert rc == 0, res
    assert res["level"] == "L2A"
    product = open_product(str(safe_l2a))
    # the finest file of each band: B02 from R10m (R20m also holds one), B05 from R20m
    assert "/R10m/" in product.band_paths["B02"] and "/R20m/" in product.band_paths["B05"]
    assert product.scl_path and product.scl_path.endswith("_SCL_20m.jp2")
    assert np.allclose(res["reflectance"]["offsets"], [-0.1] * 10)

    mask_uri = res["valid_mask"]
    assert mask_uri == (tmp_path / "l2a_valid.tif").as_uri()
    assert is_cog(mask_uri)[0]
    assert cog_validate(storage.gdal_path(mask_uri))[0]
    with rasterio.open(out) as ds, rasterio.open(tmp_path / "l2a_valid.tif") as m:
        assert (m.width, m.height, m.transform) == (ds.width, ds.height, ds.transform)
        mask = m.read(1)
        np.testing.assert_array_equal(ds.read(1), read_band(band_file(BORDEAUX / "imgs_1", "B02")))
    assert set(np.unique(mask)) <= {0, 1}
    # expected share of valid pixels from the synthetic 20 m SCL (nearest resampling to 10 m)
    with rasterio.open(next(safe_l2a.rglob("*_B02_20m.jp2"))) as b20:
        scl = scl_from_blue(b20.read(1))
    expected = np.isin(scl, (4, 5, 6, 7, 11)).mean()
    assert abs(mask.mean() - expected) < 0.02
    assert abs(res["valid_fraction"] - mask.mean()) < 1e-6
    # the first 6 SCL rows (no data) are 12 rows of the 10 m grid
    assert mask[:11].max() == 0 and mask[14:].max() == 1
    item = json.loads((tmp_path / "l2a.json").read_text())
    assert item["assets"]["valid"]["href"] == mask_uri


def test_l2a_without_image_list_walks_img_data(tmp_path: Path) -> None:
    safe = build_safe_l2a(tmp_path, with_image_list=False)
    product = open_product(str(safe))
    assert sorted(product.band_paths) == sorted(
        ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
    )
    assert "/R10m/" in product.band_paths["B02"]
    assert product.scl_path is not None


def test_mtd_file_as_product(tmp_path: Path, safe_l1c: Path) -> None:
    assert open_product(str(safe_l1c / "MTD_MSIL1C.xml")).product_id == safe_l1c.name[:-5]
