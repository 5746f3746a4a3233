"""Fixtures of the fusion service's tests: small real crops of the Sen1Floods11 chip."""

from __future__ import annotations

from pathlib import Path

import pytest
import rasterio
from rasterio.windows import Window

REPO = Path(__file__).resolve().parents[3]
FLOODS = REPO / "data" / "fusion" / "sen1floods11"
CLOUDS = REPO / "data" / "fusion" / "sen12mscr"
BEN = REPO / "data" / "bigearthnet"


def crop(src: Path, dst: Path, size: int, tags: dict[str, str] | None = None) -> Path:
    with rasterio.open(src) as ds:
        win = Window(128, 128, size, size)
        prof = ds.profile | {
            "width": size,
            "height": size,
            "transform": ds.window_transform(win),
            "tiled": False,
        }
        prof.pop("blockxsize", None)
        prof.pop("blockysize", None)
        with rasterio.open(dst, "w", **prof) as out:
            out.write(ds.read(window=win))
            out.descriptions = ds.descriptions
            if tags:
                out.update_tags(**tags)
    return dst


@pytest.fixture(scope="session")
def chip(tmp_path_factory) -> dict[str, Path]:
    """A 128x128 crop of the chip: S2 (acquired 2019-02-01), S1 (2019-02-03), labels."""
    d = tmp_path_factory.mktemp("chip")
    return {
        "optical": crop(
            FLOODS / "Spain_7370579_S2Hand.tif",
            d / "crop_S2Hand.tif",
            128,
            {"ACQUISITION_DATETIME": "2019-02-01T11:00:00+00:00"},
        ),
        "radar": crop(
            FLOODS / "Spain_7370579_S1Hand.tif",
            d / "crop_S1Hand.tif",
            128,
            {"datetime": "2019-02-03T18:00:00+00:00"},
        ),
        "labels": crop(FLOODS / "Spain_7370579_LabelHand.tif", d / "crop_LabelHand.tif", 128),
    }
