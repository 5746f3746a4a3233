"""Labelled change-detection datasets in the OSCD layout (Daudt et al. 2018).

``<root>/<city>/imgs_1/*_<BAND>.tif``, ``imgs_2/…`` (one GeoTIFF per band, 10/20/60 m) and
``cm/<city>-cm.tif`` (labels: 1 no change, 2 change, on date 1's 10 m grid, often without
georeferencing). :func:`build_stack` makes the stack the preprocessing service would: the bands
resampled (bilinear) onto the B02 grid, uint16, nodata 0, band descriptions = band names.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from candela_sdk.sentinel2 import DEFAULT_BANDS, band_files

#: the 10 Sentinel-2 bands at 10 and 20 m, in the preprocessing service's order
BANDS: tuple[str, ...] = DEFAULT_BANDS


def band_file(city_dir: Path, date: int, band: str) -> Path:
    folder = city_dir / f"imgs_{date}"
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    hit = band_files(names).get(band)
    if hit is None:
        raise FileNotFoundError(f"band {band} missing in {folder}")
    return folder / hit


def labels_file(city_dir: Path) -> Path | None:
    """The city's label raster, or None when the city has no labels (OSCD test cities)."""
    hits = sorted((city_dir / "cm").glob("*-cm.tif"))
    return hits[0] if hits else None


def labelled_cities(root: Path) -> list[str]:
    """Cities under ``root`` with both dates and labels, sorted."""
    return sorted(
        d.name
        for d in root.iterdir()
        if d.is_dir() and (d / "imgs_1").is_dir() and (d / "imgs_2").is_dir() and labels_file(d)
    )


def same_grid(city_dir: Path) -> bool:
    """Whether the two dates' B02 rasters share one grid (OSCD saclay_e: they do not)."""
    import rasterio

    grids = []
    for date in (1, 2):
        with rasterio.open(band_file(city_dir, date, "B02")) as src:
            grids.append((src.shape, src.crs, src.transform))
    return grids[0] == grids[1]


def build_stack(
    city_dir: Path,
    date: int,
    out: Path,
    bands: Sequence[str] = BANDS,
    grid_date: int | None = None,
) -> Path:
    """A multi-band GeoTIFF for one date: every band resampled (bilinear) onto a B02 grid.

    ``grid_date``: the date whose B02 grid to use (default: ``date``), as
    ``candela-preprocess --grid-like`` aligns a date onto another's grid; pixels outside the
    source footprint are 0 (nodata).
    """
    import rasterio
    from rasterio.warp import Resampling, reproject

    with rasterio.open(band_file(city_dir, grid_date or date, "B02")) as ref:
        profile = ref.profile
        height, width, crs, transform = ref.height, ref.width, ref.crs, ref.transform
    stack = np.zeros((len(bands), height, width), dtype=np.uint16)
    for i, name in enumerate(bands):
        with rasterio.open(band_file(city_dir, date, name)) as src:
            if (src.height, src.width) == (height, width) and src.transform == transform:
                stack[i] = src.read(1)
            else:
                reproject(
                    source=rasterio.band(src, 1),
                    destination=stack[i],
                    dst_transform=transform,
                    dst_crs=crs,
                    resampling=Resampling.bilinear,
                )
    profile.update(
        driver="GTiff",
        count=len(bands),
        dtype="uint16",
        nodata=0,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
    )
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(stack)
        for i, name in enumerate(bands, start=1):
            dst.set_band_description(i, name)
    return out
