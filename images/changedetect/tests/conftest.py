"""Fixtures of the change detection tests: OSCD stacks and synthetic rasters."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from candela_changedetect.oscd import build_stack as build_oscd_stack

#: The 10 bands of the preprocessing service's stack, in its order.
BANDS = ("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12")


def write_stack(
    path: Path,
    data: np.ndarray,
    *,
    crs: str = "EPSG:32630",
    transform: object = None,
    nodata: float | None = 0,
    band_names: Sequence[str] | None = None,
) -> Path:
    """Write a (bands, rows, cols) array as a GeoTIFF (10 m UTM grid unless told otherwise)."""
    import rasterio
    from rasterio.transform import from_origin

    arr = data[np.newaxis] if data.ndim == 2 else data
    tr = transform if transform is not None else from_origin(500000.0, 4_900_000.0, 10.0, 10.0)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype=arr.dtype,
        crs=crs,
        transform=tr,
        nodata=nodata,
    ) as dst:
        dst.write(arr)
        names = (
            band_names
            if band_names is not None
            else (BANDS[: arr.shape[0]] if arr.shape[0] > 1 else ())
        )
        for i, name in enumerate(names, start=1):
            dst.set_band_description(i, name)
    return path


@pytest.fixture(scope="session")
def bordeaux_stacks(
    oscd_bordeaux: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("bordeaux")
    return (
        build_oscd_stack(oscd_bordeaux, 1, folder / "before.tif"),
        build_oscd_stack(oscd_bordeaux, 2, folder / "after.tif"),
    )


def synthetic_pair(
    size: int = 120, square: tuple[int, int, int, int] = (40, 70, 40, 70), seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two 10-band uint16 stacks: the same textured scene (after = gain × before + offset +
    noise, like a radiometric difference between dates) with one square of it that becomes
    bare soil. Returns (before, after, truth)."""
    rng = np.random.default_rng(seed)
    nb = len(BANDS)
    veg = np.array([500, 800, 500, 3500, 1200, 2800, 3200, 3500, 1800, 900], dtype=float)
    soil = np.array([1500, 1800, 2200, 2600, 2300, 2500, 2550, 2600, 3000, 2600], dtype=float)
    urban = np.array([1200, 1300, 1400, 1800, 1500, 1700, 1750, 1850, 2000, 1700], dtype=float)
    # smooth mixture of two land covers, plus pixel texture
    yy, xx = np.mgrid[0:size, 0:size] / size
    mix = 0.5 + 0.4 * np.sin(6 * xx + 3 * yy) * np.cos(4 * yy)
    base = mix[None] * veg[:, None, None] + (1 - mix[None]) * urban[:, None, None]
    before = base * rng.normal(1.0, 0.03, size=(nb, size, size))
    after = 1.08 * before + 40 + rng.normal(0, 25, size=(nb, size, size))
    r0, r1, c0, c1 = square
    truth = np.zeros((size, size), dtype=bool)
    truth[r0:r1, c0:c1] = True
    # the square keeps the scene's land cover at the first date (as real change does: a
    # spectrum found everywhere else) and becomes bare soil at the second
    after[:, truth] = soil[:, None] * rng.normal(1.0, 0.03, size=(nb, truth.sum()))
    return (
        np.clip(before, 1, 65535).astype(np.uint16),
        np.clip(after, 1, 65535).astype(np.uint16),
        truth,
    )


@pytest.fixture
def make_pair() -> object:
    """:func:`synthetic_pair` (tests run with --import-mode=importlib: no conftest imports)."""
    return synthetic_pair


@pytest.fixture
def write_tif() -> object:
    """:func:`write_stack`."""
    return write_stack


@pytest.fixture
def oscd_stack() -> object:
    """:func:`build_oscd_stack`."""
    return build_oscd_stack
