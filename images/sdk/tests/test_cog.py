"""cog_writer: overviews computed while writing aligned blocks, GDAL's otherwise; valid COGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_validate

from candela_sdk.cog import CogSpec, _reduce2, cog_writer, is_cog, overview_factors


def _spec(width: int, height: int, **kw) -> CogSpec:
    base = dict(
        width=width,
        height=height,
        count=2,
        dtype="uint16",
        crs="EPSG:32630",
        transform=from_origin(600000, 5000000, 10, 10),
        nodata=0,
        band_names=["a", "b"],
        blocksize=256,
    )
    base.update(kw)
    return CogSpec(**base)


def _image(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    data = rng.integers(1, 5000, size=(2, height, width), dtype="uint16")
    data[:, :40, :70] = 0  # a nodata corner
    return data


def _write(path: Path, spec: CogSpec, data: np.ndarray, block: int) -> bool:
    with cog_writer(path, spec) as w:
        for row in range(0, spec.height, block):
            for col in range(0, spec.width, block):
                part = data[:, row : row + block, col : col + block]
                w.write(part, window=Window(col, row, part.shape[2], part.shape[1]))
        return w.has_overviews


def test_overview_factors_follow_the_cog_driver() -> None:
    assert overview_factors(10980, 10980, 512) == [2, 4, 8, 16, 32]
    assert overview_factors(5490, 5490, 512) == [2, 4, 8, 16]
    assert overview_factors(512, 400, 512) == []


def test_reduce2_averages_valid_pixels_only() -> None:
    block = np.array([[[0, 4, 1, 1], [0, 0, 3, 3], [5, 5, 7] + [7]]], dtype="uint16")[:, :2]
    out = _reduce2(block, 0, "average")
    assert out.tolist() == [[[4, 2]]]
    assert _reduce2(np.zeros((1, 2, 2), "uint16"), 0, "average").tolist() == [[[0]]]


def test_block_overviews_match_gdal(tmp_path: Path) -> None:
    width, height = 1100, 900
    data = _image(width, height)
    out, ref = tmp_path / "x.tif", tmp_path / "ref.tif"
    assert _write(out, _spec(width, height), data, 512) is True
    # 300-pixel blocks are not aligned on the overview factors: GDAL computes the overviews
    assert _write(ref, _spec(width, height), data, 300) is False
    for path in (out, ref):
        valid, errors, _warnings = cog_validate(str(path))
        assert valid, errors
        assert is_cog(path)[0]
    with rasterio.open(out) as a, rasterio.open(ref) as b:
        assert list(a.descriptions) == ["a", "b"]
        assert a.overviews(1) == b.overviews(1) == [2, 4, 8]
        np.testing.assert_array_equal(a.read(), data)
        np.testing.assert_array_equal(b.read(), data)
        for level in range(3):
            with (
                rasterio.open(out, overview_level=level) as oa,
                rasterio.open(ref, overview_level=level) as ob,
            ):
                x, y = oa.read().astype(int), ob.read().astype(int)
                if x.shape == y.shape:  # same nodata-aware average, up to rounding
                    assert np.abs(x - y).max() <= 1
                else:
                    # the COG driver rounds a level's size down (137 for 1100/8), the block
                    # writer up (138: each pixel is exactly 8×8 pixels): same content
                    assert abs(x.shape[1] - y.shape[1]) <= 1 and abs(x.shape[2] - y.shape[2]) <= 1
                    assert abs(x[x > 0].mean() - y[y > 0].mean()) < 5


def test_failure_in_the_block_loop_publishes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "x.tif"
    with pytest.raises(RuntimeError), cog_writer(out, _spec(600, 600)) as w:
        w.write(_image(600, 600)[:, :512, :512], window=Window(0, 0, 512, 512))
        raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
