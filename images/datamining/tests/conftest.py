"""Stacks for the datamining tests: small COGs written like the preprocess service writes them
(bands B02…B12 as descriptions, uint16 with nodata 0, reflectance scale 1e-4, product tags)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rasterio.transform import from_origin

from candela_sdk.cog import CogSpec, write_cog

BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
WATER = [800, 700, 400, 300, 250, 220, 200, 180, 100, 50]
FOREST = [300, 500, 300, 900, 2500, 3000, 3500, 3600, 1500, 700]


def write_stack(path: Path, data: np.ndarray) -> str:
    _, h, w = data.shape
    spec = CogSpec(
        width=w,
        height=h,
        count=len(BANDS),
        dtype="uint16",
        crs="EPSG:32630",
        transform=from_origin(699960.0, 4990200.0, 10.0, 10.0),
        nodata=0,
        band_names=BANDS,
        scales=[1e-4] * len(BANDS),
        offsets=[0.0] * len(BANDS),
        tags={"PRODUCT_ID": "S2A_TEST_PRODUCT", "ACQUISITION_DATETIME": "2020-05-04T10:56:21Z"},
        blocksize=128,
    )
    return write_cog(path, data, spec)


def landscape(h: int = 96, w: int = 128) -> np.ndarray:
    """Water in the left half, forest in the right half, the top-left 32 × 32 px no data."""
    data = np.zeros((len(BANDS), h, w), np.uint16)
    rng = np.random.default_rng(0)
    for i, (a, b) in enumerate(zip(WATER, FOREST, strict=True)):
        data[i, :, : w // 2] = a
        data[i, :, w // 2 :] = b + rng.integers(0, 200, (h, w - w // 2))
    data[:, :32, :32] = 0
    return data


@pytest.fixture
def stack(tmp_path: Path) -> str:
    return write_stack(tmp_path / "stack.tif", landscape())
