"""Grids: ``--grid-like`` puts a product onto a previous output's grid; ``grids_match`` refuses
silent mismatches. Uses the real OSCD Saclay-East pair, whose two dates are NOT on the same grid
(data/oscd/saclay_e_subset: B02, B03, B05 of both dates)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from preprocess_helpers import BORDEAUX, SACLAY, band_file, leftovers, read_band
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds

from candela_sdk.cog import CogSpec, write_cog
from candela_sdk.grids import grid_of, grids_match

BANDS = ["B02", "B03", "B05"]


@pytest.fixture(scope="module")
def saclay_date1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from candela_preprocess.service import SERVICE
    from candela_sdk.contract import main

    out = tmp_path_factory.mktemp("saclay") / "t1.tif"
    argv = ["--product", str(SACLAY / "imgs_1"), "--output", str(out), "--bands", *BANDS]
    assert main(SERVICE, argv) == 0
    return out


def test_different_grids_are_detected(run_service, tmp_path: Path, saclay_date1: Path) -> None:
    t2 = tmp_path / "t2.tif"
    rc, _ = run_service("--product", SACLAY / "imgs_2", "--output", t2, "--bands", *BANDS)
    assert rc == 0
    ok, why = grids_match(saclay_date1, t2)
    assert not ok
    assert "shapes differ (688x639 vs 679x631 pixels)" == why


def test_grid_like_aligns(run_service, tmp_path: Path, saclay_date1: Path) -> None:
    t2 = tmp_path / "t2_on_t1.tif"
    rc, res = run_service(
        "--product",
        SACLAY / "imgs_2",
        "--output",
        t2,
        "--bands",
        *BANDS,
        "--grid-like",
        saclay_date1,
    )
    assert rc == 0, res
    assert grids_match(saclay_date1, t2) == (True, "")
    g = grid_of(saclay_date1)
    assert (res["width"], res["height"]) == (g.width, g.height)
    assert res["resampled_bands"] == BANDS  # B02 itself had to be resampled
    assert res["valid_fraction"] > 0.99  # same footprint, finer target grid
    with rasterio.open(t2) as ds:
        stack = ds.read()
    for i, band in enumerate(BANDS):
        native = read_band(band_file(SACLAY / "imgs_2", band)).astype(float)
        got = stack[i].astype(float)
        assert abs(got.mean() - native.mean()) / native.mean() < 0.01, band


def test_grid_like_in_another_crs(run_service, tmp_path: Path) -> None:
    """A UTM 10 m grid-like raster: the EPSG:4326 OSCD product is warped onto it."""
    with rasterio.open(band_file(SACLAY / "imgs_1", "B02")) as ds:
        w, s, e, n = transform_bounds(ds.crs, "EPSG:32631", *ds.bounds)
    # a 10 m grid well inside the product's footprint
    x0, y0 = np.floor(w / 10) * 10 + 200, np.ceil(n / 10) * 10 - 200
    width, height = int((e - w - 400) // 10), int((n - s - 400) // 10)
    like = tmp_path / "utm_like.tif"
    spec = CogSpec(
        width=width,
        height=height,
        count=1,
        dtype="uint8",
        crs="EPSG:32631",
        transform=from_origin(x0, y0, 10, 10),
    )
    write_cog(like, np.zeros((height, width), "uint8"), spec)
    out = tmp_path / "utm.tif"
    rc, res = run_service(
        "--product", SACLAY / "imgs_1", "--output", out, "--bands", "B02", "--grid-like", like
    )
    assert rc == 0, res
    assert res["crs"] == "EPSG:32631"
    assert grids_match(like, out) == (True, "")
    assert res["valid_fraction"] > 0.99
    native = read_band(band_file(SACLAY / "imgs_1", "B02")).astype(float)
    with rasterio.open(out) as ds:
        got = ds.read(1).astype(float)
    assert abs(got.mean() - native.mean()) / native.mean() < 0.02


def test_grid_like_elsewhere_is_no_data(run_service, tmp_path: Path, saclay_date1: Path) -> None:
    out = tmp_path / "out"
    rc, res = run_service(
        "--product", BORDEAUX / "imgs_1", "--output", out / "x.tif", "--grid-like", saclay_date1
    )
    assert rc == 3 and res["outcome"] == "no_data"
    assert "does not overlap the grid" in res["error"]
    assert leftovers(out) == []


def test_grid_like_unreadable_is_bad_input(run_service, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_text("nope")
    out = tmp_path / "out"
    rc, res = run_service(
        "--product", BORDEAUX / "imgs_1", "--output", out / "x.tif", "--grid-like", bad
    )
    assert rc == 2 and "cannot open raster" in res["error"]
    assert leftovers(out) == []
