"""Cloud-Optimized GeoTIFF writing, block by block, published atomically to a storage URI.

Data is written into a tiled temporary GeoTIFF (so memory stays bounded to one block), then
GDAL's COG driver copies it with internal overviews into the final file, which is published with
:func:`candela_sdk.storage.writing` (temporary name, then rename or S3 copy).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from candela_sdk import storage
from candela_sdk.errors import OutputError

log = logging.getLogger(__name__)


@dataclass
class CogSpec:
    width: int
    height: int
    count: int
    dtype: str
    crs: Any
    transform: Any
    nodata: float | int | None = None
    band_names: Sequence[str] = ()
    scales: Sequence[float] | None = None
    offsets: Sequence[float] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    band_tags: Sequence[dict[str, str]] | None = None
    colormap: dict[int, tuple[int, int, int, int]] | None = None
    compress: str = "DEFLATE"
    blocksize: int = 512
    overview_resampling: str = "average"


class _BlockWriter:
    def __init__(self, ds: Any) -> None:
        self._ds = ds

    def write(self, data: np.ndarray, window: Any = None, indexes: Any = None) -> None:
        self._ds.write(data, window=window, indexes=indexes)

    def write_mask(self, mask: np.ndarray, window: Any = None) -> None:
        self._ds.write_mask(mask, window=window)

    @property
    def dataset(self) -> Any:
        return self._ds


@contextlib.contextmanager
def cog_writer(uri: str | os.PathLike[str], spec: CogSpec) -> Iterator[_BlockWriter]:
    """Open a COG for writing at ``uri``; write blocks through the yielded writer."""
    import rasterio
    from rasterio.shutil import copy as rio_copy

    scratch_parent = os.environ.get("CANDELA_SCRATCH") or None
    with tempfile.TemporaryDirectory(prefix="candela-cog-", dir=scratch_parent) as scratch:
        tmp_tif = Path(scratch) / "stage.tif"
        profile = {
            "driver": "GTiff",
            "width": spec.width,
            "height": spec.height,
            "count": spec.count,
            "dtype": spec.dtype,
            "crs": spec.crs,
            "transform": spec.transform,
            "nodata": spec.nodata,
            "tiled": True,
            "blockxsize": spec.blocksize,
            "blockysize": spec.blocksize,
            "compress": "DEFLATE",
            "BIGTIFF": "IF_SAFER",
        }
        try:
            ds = rasterio.open(tmp_tif, "w", **profile)
        except rasterio.errors.RasterioIOError as exc:
            raise OutputError(f"cannot create scratch raster: {exc}") from None
        with ds:
            for i, name in enumerate(spec.band_names, start=1):
                ds.set_band_description(i, name)
            if spec.scales is not None:
                ds.scales = tuple(spec.scales)
            if spec.offsets is not None:
                ds.offsets = tuple(spec.offsets)
            if spec.tags:
                ds.update_tags(**spec.tags)
            if spec.band_tags:
                for i, t in enumerate(spec.band_tags, start=1):
                    if t:
                        ds.update_tags(i, **t)
            if spec.colormap:
                ds.write_colormap(1, spec.colormap)
            yield _BlockWriter(ds)
        with storage.writing(uri, suffix=".tif") as out:
            rio_copy(
                tmp_tif,
                out,
                driver="COG",
                COMPRESS=spec.compress,
                BLOCKSIZE=spec.blocksize,
                OVERVIEWS="AUTO",
                RESAMPLING=spec.overview_resampling,
                BIGTIFF="IF_SAFER",
                NUM_THREADS="ALL_CPUS",
            )
    log.info(
        "wrote COG %s (%dx%d, %d band(s))", storage.to_uri(uri), spec.width, spec.height, spec.count
    )


def write_cog(uri: str | os.PathLike[str], data: np.ndarray, spec: CogSpec) -> str:
    """Write a whole array (bands, rows, cols) or (rows, cols) as a COG."""
    arr = data[np.newaxis] if data.ndim == 2 else data
    with cog_writer(uri, spec) as w:
        w.write(arr)
    return storage.to_uri(uri)


def is_cog(uri: str | os.PathLike[str]) -> tuple[bool, list[str]]:
    """A light COG check (tiling, overviews, IFD order) usable without rio-cogeo."""
    import rasterio

    errors: list[str] = []
    with storage.rasterio_env(), rasterio.open(storage.gdal_path(uri)) as ds:
        if ds.driver != "GTiff":
            errors.append(f"driver is {ds.driver}")
        if not ds.profile.get("tiled") and (ds.width > 512 or ds.height > 512):
            errors.append("not tiled")
        if max(ds.width, ds.height) > 512 and not ds.overviews(1):
            errors.append("no internal overviews")
        layout = ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT")
        if layout and layout != "COG":
            errors.append(f"layout is {layout}")
    return (not errors, errors)
