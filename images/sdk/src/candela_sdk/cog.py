"""Cloud-Optimized GeoTIFF writing, block by block, published atomically to a storage URI.

Blocks are written into an uncompressed tiled scratch GeoTIFF (the *stage*; memory stays bounded
to one block, and no time goes into compressing pixels that are read back once). When the
blocks are aligned on the overview factors (the usual case: windows of a multiple of
``2**levels`` pixels) and the overview resampling is ``average`` or ``nearest``, the internal
overviews are computed from each block as it is written, into uncompressed stage files too. GDAL's
COG driver then copies a VRT of the stage that declares those overviews (``<Overview>``
elements), compressing every tile once, in ``NUM_THREADS`` threads, without a second pass over the
full-resolution pixels. Otherwise (unaligned or partial writes, other resamplings) the COG driver
computes the overviews itself. The result is published with :func:`candela_sdk.storage.writing`
(temporary name, then rename or S3 copy).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from candela_sdk import storage
from candela_sdk.errors import OutputError

log = logging.getLogger(__name__)

#: overview resamplings computed while writing (others are left to GDAL's COG driver)
_BLOCK_OVERVIEW_RESAMPLINGS = ("average", "nearest")


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


def overview_factors(width: int, height: int, blocksize: int) -> list[int]:
    """The overview factors GDAL's COG driver picks with ``OVERVIEWS=AUTO``: 2, 4, … until the
    smallest level fits in one tile."""
    factors: list[int] = []
    f = 1
    while math.ceil(width / f) > blocksize or math.ceil(height / f) > blocksize:
        f *= 2
        factors.append(f)
    return factors


def _reduce2(block: np.ndarray, nodata: float | int | None, resampling: str) -> np.ndarray:
    """One overview step (factor 2) of a (bands, rows, cols) block; odd edges are padded."""
    b, h, w = block.shape
    h2, w2 = (h + 1) // 2, (w + 1) // 2
    if resampling == "nearest":
        # GDAL's nearest overview takes the pixel under the centre of the output pixel
        rows = np.minimum(np.arange(h2) * 2 + 1, h - 1)
        cols = np.minimum(np.arange(w2) * 2 + 1, w - 1)
        return block[:, rows][:, :, cols]
    work = block.astype(np.float64 if block.dtype.itemsize > 4 else np.float32)
    if nodata is None:
        valid = np.ones(work.shape, dtype=bool)
    elif isinstance(nodata, float) and math.isnan(nodata):
        valid = ~np.isnan(work)
    else:
        valid = work != nodata
    if h % 2 or w % 2:
        pad = ((0, 0), (0, h2 * 2 - h), (0, w2 * 2 - w))
        work = np.pad(work, pad)
        valid = np.pad(valid, pad)
    work = np.where(valid, work, 0)
    total = work.reshape(b, h2, 2, w2, 2).sum(axis=(2, 4))
    count = valid.reshape(b, h2, 2, w2, 2).sum(axis=(2, 4))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    if np.issubdtype(block.dtype, np.integer):
        mean = np.floor(mean + 0.5)
    fill = nodata if nodata is not None else 0
    out = np.where(count > 0, mean, fill)
    return out.astype(block.dtype)


class _BlockWriter:
    def __init__(self, ds: Any, spec: CogSpec, scratch: Path) -> None:
        self._ds = ds
        self._spec = spec
        self._factors = overview_factors(spec.width, spec.height, spec.blocksize)
        self._ovr: list[Any] | None = None
        self.overview_paths: list[Path] = []
        if self._factors and spec.overview_resampling in _BLOCK_OVERVIEW_RESAMPLINGS:
            import rasterio

            self._ovr = []
            for f in self._factors:
                path = scratch / f"overview_{f}.tif"
                self._ovr.append(
                    rasterio.open(
                        path,
                        "w",
                        **_stage_profile(
                            spec, math.ceil(spec.width / f), math.ceil(spec.height / f)
                        ),
                    )
                )
                self.overview_paths.append(path)

    def write(self, data: np.ndarray, window: Any = None, indexes: Any = None) -> None:
        self._ds.write(data, window=window, indexes=indexes)
        if self._ovr is not None:
            self._write_overviews(data, window, indexes)

    def write_mask(self, mask: np.ndarray, window: Any = None) -> None:
        self._ds.write_mask(mask, window=window)
        self._drop_overviews("a mask was written")

    @property
    def dataset(self) -> Any:
        return self._ds

    @property
    def has_overviews(self) -> bool:
        return self._ovr is not None

    def _drop_overviews(self, why: str) -> None:
        if self._ovr is None:
            return
        log.debug("overviews left to GDAL: %s", why)
        for ds in self._ovr:
            ds.close()
        self._ovr = None
        self.overview_paths = []

    def _write_overviews(self, data: np.ndarray, window: Any, indexes: Any) -> None:
        from rasterio.windows import Window

        assert self._ovr is not None
        spec = self._spec
        if indexes is not None:
            self._drop_overviews("a write with band indexes")
            return
        arr = data[np.newaxis] if data.ndim == 2 else data
        if window is None:
            col, row, w, h = 0, 0, spec.width, spec.height
        else:
            if not isinstance(window, Window):
                window = Window.from_slices(*window)
            col, row = int(window.col_off), int(window.row_off)
            w, h = int(window.width), int(window.height)
        fmax = self._factors[-1]
        aligned = (
            col % fmax == 0
            and row % fmax == 0
            and (w % fmax == 0 or col + w == spec.width)
            and (h % fmax == 0 or row + h == spec.height)
            and arr.shape[-2:] == (h, w)
        )
        if not aligned:
            self._drop_overviews(f"write at {col},{row} ({w}x{h}) not aligned on {fmax}")
            return
        level = arr
        for f, ds in zip(self._factors, self._ovr, strict=True):
            level = _reduce2(level, spec.nodata, spec.overview_resampling)
            ds.write(level, window=Window(col // f, row // f, level.shape[2], level.shape[1]))

    def close(self) -> None:
        if self._ovr is not None:
            for ds in self._ovr:
                ds.close()


def _stage_profile(spec: CogSpec, width: int, height: int) -> dict[str, Any]:
    return {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": spec.count,
        "dtype": spec.dtype,
        "crs": spec.crs,
        "transform": spec.transform,
        "nodata": spec.nodata,
        "tiled": True,
        "blockxsize": spec.blocksize,
        "blockysize": spec.blocksize,
        "compress": "NONE",
        "BIGTIFF": "IF_SAFER",
    }


def _vrt_with_overviews(stage: Path, overviews: list[Path], vrt: Path) -> None:
    """A VRT of the stage declaring the overview stage files as its overviews."""
    from rasterio.shutil import copy as rio_copy

    rio_copy(stage, vrt, driver="VRT")
    tree = ET.parse(vrt)
    for band in tree.getroot().iter("VRTRasterBand"):
        index = band.get("band")
        for path in overviews:
            ovr = ET.SubElement(band, "Overview")
            src = ET.SubElement(ovr, "SourceFilename", relativeToVRT="0")
            src.text = str(path)
            ET.SubElement(ovr, "SourceBand").text = index
    tree.write(vrt)


@contextlib.contextmanager
def cog_writer(uri: str | os.PathLike[str], spec: CogSpec) -> Iterator[_BlockWriter]:
    """Open a COG for writing at ``uri``; write blocks through the yielded writer."""
    import rasterio
    from rasterio.shutil import copy as rio_copy

    from candela_sdk.settings import get_settings

    scratch_parent = get_settings().scratch
    with tempfile.TemporaryDirectory(prefix="candela-cog-", dir=scratch_parent) as scratch:
        tmp_tif = Path(scratch) / "stage.tif"
        try:
            ds = rasterio.open(tmp_tif, "w", **_stage_profile(spec, spec.width, spec.height))
        except rasterio.errors.RasterioIOError as exc:
            raise OutputError(f"cannot create scratch raster: {exc}") from None
        writer: _BlockWriter | None = None
        try:
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
                writer = _BlockWriter(ds, spec, Path(scratch))
                yield writer
        finally:
            if writer is not None:
                writer.close()
        source = tmp_tif
        if writer.overview_paths:
            source = Path(scratch) / "stage.vrt"
            _vrt_with_overviews(tmp_tif, writer.overview_paths, source)
        with storage.writing(uri, suffix=".tif") as out:
            rio_copy(
                source,
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
