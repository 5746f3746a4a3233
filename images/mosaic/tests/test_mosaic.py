"""Tiles cut from one grid merge back into exactly the whole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from candela_mosaic.service import SERVICE
from rasterio.transform import from_origin

from candela_sdk.cog import CogSpec, is_cog, write_cog
from candela_sdk.contract import main

T = from_origin(600000, 5000000, 10, 10)


def _write(path: Path, data: np.ndarray, col: int, row: int, **kw) -> str:
    spec = CogSpec(
        width=data.shape[2], height=data.shape[1], count=data.shape[0], dtype=str(data.dtype),
        crs=kw.get("crs", "EPSG:32630"),
        transform=T * rasterio.Affine.translation(col + kw.get("shift", 0), row),
        nodata=0, band_names=["B02", "B03"][: data.shape[0]],
        tags={"ACQUISITION_DATETIME": "2017-04-19T10:50:31Z"},
    )  # fmt: skip
    write_cog(path, data, spec)
    return str(path)


@pytest.fixture
def whole() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(1, 4000, size=(2, 300, 260), dtype=np.uint16)


def test_tiles_merge_back_into_the_whole(tmp_path: Path, whole: np.ndarray, capsys) -> None:
    # four tiles overlapping by one pixel, as whole-pixel crops of one grid produce
    cuts = [(0, 0, 151, 131), (0, 130, 151, 260), (150, 0, 300, 131), (150, 130, 300, 260)]
    inputs = [
        _write(tmp_path / f"t{i}.tif", whole[:, r0:r1, c0:c1], c0, r0)
        for i, (r0, c0, r1, c1) in enumerate(cuts)
    ]
    out = tmp_path / "mosaic.tif"
    assert main(SERVICE, ["--inputs", *inputs, "--output", str(out), "--block-size", "64"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["datetime"] == "2017-04-19T10:50:31Z"
    assert result["tiles"] == 4 and (result["width"], result["height"]) == (260, 300)
    assert is_cog(out)[0]
    with rasterio.open(out) as ds:
        assert (ds.read() == whole).all()
        assert ds.transform == T
        assert ds.descriptions == ("B02", "B03")
    assert Path(result["item"].removeprefix("file://")).exists()


def test_gap_between_tiles_is_nodata(tmp_path: Path, whole: np.ndarray) -> None:
    a = _write(tmp_path / "a.tif", whole[:, :, :100], 0, 0)
    b = _write(tmp_path / "b.tif", whole[:, :, 160:], 160, 0)
    out = tmp_path / "m.tif"
    assert main(SERVICE, ["--inputs", a, b, "--output", str(out)]) == 0
    with rasterio.open(out) as ds:
        data = ds.read()
    assert (data[:, :, 100:160] == 0).all()
    assert (data[:, :, 160:] == whole[:, :, 160:]).all()


def test_single_tile_is_not_rewritten(tmp_path: Path, whole: np.ndarray) -> None:
    a = _write(tmp_path / "a.tif", whole, 0, 0)
    before = Path(a).stat().st_mtime_ns
    assert main(SERVICE, ["--inputs", a, "--output", a]) == 0
    assert Path(a).stat().st_mtime_ns == before


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"shift": 0.5}, "not aligned"), ({"crs": "EPSG:32631"}, "different CRS")],
)
def test_misaligned_tiles_are_refused(
    tmp_path: Path, whole: np.ndarray, kw, message, capsys
) -> None:
    a = _write(tmp_path / "a.tif", whole[:, :, :100], 0, 0)
    b = _write(tmp_path / "b.tif", whole[:, :, 100:], 100, 0, **kw)
    out = tmp_path / "m.tif"
    assert main(SERVICE, ["--inputs", a, b, "--output", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_tile(tmp_path: Path, capsys) -> None:
    assert (
        main(SERVICE, ["--inputs", str(tmp_path / "nope.tif"), "--output", str(tmp_path / "m.tif")])
        == 2
    )
    assert "tile not found" in capsys.readouterr().err
