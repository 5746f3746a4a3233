"""The preprocessing core: bands of one product resampled onto one grid, stacked into one COG.

Memory stays bounded whatever the tile size: the output grid is cut into windows of
``block_size``×``block_size`` pixels, and for each window every band is read (bands already on the
output grid, such as B02 itself, by a plain windowed read, so their pixels are copied unchanged;
the others through a :class:`rasterio.vrt.WarpedVRT` onto the output grid, which reads only the
source pixels that window needs) and the stack is written to the COG stage file. With the default
1024-pixel blocks one window of the 10-band stack is 20 MiB; GDAL's block cache is capped at
:data:`GDAL_CACHE_MB`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from candela_preprocess import code_version
from candela_preprocess.gridmath import (
    PixelWindow,
    block_windows,
    bounds_to_window,
    integer_offset,
    window_transform,
)
from candela_preprocess.layouts import Product, open_product
from candela_preprocess.quality import PixelSample, QualityGateError, sample_step
from candela_sdk import storage
from candela_sdk.errors import InputError, NoDataError, OutputError
from candela_sdk.sentinel2 import BANDS, REFERENCE_BAND
from candela_sdk.settings import get_settings

if TYPE_CHECKING:
    from candela_preprocess.params import PreprocessParams

log = logging.getLogger(__name__)

GDAL_CACHE_MB = 256

#: resamplings for which a resampled windowed read gives the warper's exact result
DIRECT_RESAMPLINGS = ("nearest", "bilinear", "average")

#: threads reading (decompressing, resampling) bands in parallel
READ_THREADS = max(1, min(4, len(os.sched_getaffinity(0))))

#: Scene classification (L2A SCL) classes counted as valid surface observations:
#: 4 vegetation, 5 not vegetated, 6 water, 7 unclassified, 11 snow or ice. Invalid: 0 no data,
#: 1 saturated or defective, 2 dark area / cast shadow, 3 cloud shadow, 8-9 cloud, 10 cirrus.
SCL_VALID_CLASSES = (4, 5, 6, 7, 11)

EO_EXT = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
RASTER_EXT = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"


@dataclass(frozen=True)
class TargetGrid:
    crs: Any  # rasterio CRS
    transform: Any  # affine.Affine
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        from rasterio.transform import array_bounds

        west, south, east, north = array_bounds(self.height, self.width, self.transform)
        return west, south, east, north


# --- outputs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outputs:
    stack: str
    item: str
    valid: str
    report: str


def output_uris(output: str, product_id: str) -> Outputs:
    """The stack COG, its STAC item (``<stem>.json``) and validity mask (``<stem>_valid.tif``).

    ``output`` ending with ``/`` (or naming an existing folder) means ``<folder>/<product_id>.tif``.
    """
    loc = storage.parse(output)
    if str(output).endswith("/") or (loc.scheme == "file" and Path(loc.path).is_dir()):
        loc = loc.join(f"{product_id}.tif")
    name = loc.name
    if not name.lower().endswith((".tif", ".tiff")):
        raise InputError(f"--output must name a .tif file (or a folder ending with /): {output}")
    stem = name.rsplit(".", 1)[0]
    base = loc.path[: len(loc.path) - len(name)]

    def sibling(n: str) -> str:
        return storage.Location(loc.scheme, loc.bucket, base + n).uri

    return Outputs(
        stack=loc.uri,
        item=sibling(stem + ".json"),
        valid=sibling(stem + "_valid.tif"),
        report=sibling(stem + "_quality"),
    )


def _preflight_output(uri: str) -> None:
    """Fail fast (before any pixel work) when a local output folder cannot be written.

    Probes the output folder, or its nearest existing ancestor, with a temporary file; creates
    nothing that stays (the folder itself is created when the outputs are published).
    """
    loc = storage.parse(uri)
    if loc.scheme != "file":
        return
    folder = Path(loc.path).parent
    probe_dir = folder
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise OutputError(f"output folder {folder} cannot be created: {probe_dir} is a file")
    try:
        fd, probe = tempfile.mkstemp(prefix=".candela-probe-", dir=probe_dir)
    except OSError as exc:
        raise OutputError(
            f"output folder {folder} is not writable: {exc.strerror or exc}"
        ) from None
    os.close(fd)
    os.unlink(probe)


def _publish_folder(local: Path, uri: str) -> None:
    with storage.writing_folder(uri) as stage:
        shutil.copytree(local, stage, dirs_exist_ok=True)


def _remove(uri: str, recursive: bool = False) -> None:
    try:
        storage.delete(uri, recursive=recursive)
    except Exception as exc:
        log.warning("could not remove %s after a failure: %s", uri, exc)


# --- sources ---------------------------------------------------------------------------------


def _open_band(stack: contextlib.ExitStack, product: Product, band: str) -> Any:
    import rasterio

    path = product.band_path(band)
    if not path.startswith("/vsi") and not Path(path).is_file():
        raise InputError(f"band {band} missing from product {product.uri} (no file {path})")
    try:
        ds = stack.enter_context(rasterio.open(path))
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(
            f"band {band} of product {product.uri} is not a readable raster: {_first_line(exc)}"
        ) from None
    if ds.crs is None or ds.transform.is_identity:
        raise InputError(f"band {band} of product {product.uri} has no georeferencing: {path}")
    if ds.dtypes[0] not in ("uint16", "uint8"):
        raise InputError(
            f"band {band} of product {product.uri} has data type {ds.dtypes[0]}, expected uint16"
        )
    return ds


def _first_line(exc: BaseException) -> str:
    """GDAL's own message: the innermost cause of a rasterio error, first line only."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _BandReader:
    """Reads one band on the output grid, window by window."""

    def __init__(
        self, name: str, product_uri: str, src: Any, grid: TargetGrid, resampling: str
    ) -> None:
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        self.name = name
        self.product_uri = product_uri
        self.src = src
        self.offset: tuple[int, int] | None = None
        self.vrt: Any = None
        self.grid = grid
        self.resampling = resampling
        self._warped_vrt = WarpedVRT
        self._resampling = Resampling[resampling]
        self.nodata = src.nodata if src.nodata is not None else 0
        if src.crs == grid.crs:
            self.offset = integer_offset(src.transform, grid.transform)
        # Same CRS, north-up grids, a resampling whose GDAL RasterIO result is identical to the
        # warper's: windows wholly inside the source and without nodata are resampled by a
        # windowed read (several times cheaper than the warper); others go through WarpedVRT.
        st, gt = src.transform, grid.transform
        self.direct_resample = (
            self.offset is None
            and src.crs == grid.crs
            and st.b == st.d == gt.b == gt.d == 0
            and resampling in DIRECT_RESAMPLINGS
        )
        log.debug(
            "band %s: %s",
            name,
            "direct read"
            if self.offset is not None
            else "resampled read" + (" or warped" if self.direct_resample else " (warped)"),
        )

    @property
    def resampled(self) -> bool:
        return self.offset is None

    def _warped(self) -> Any:
        if self.vrt is None:
            g = self.grid
            self.vrt = self._warped_vrt(
                self.src,
                crs=g.crs,
                transform=g.transform,
                width=g.width,
                height=g.height,
                resampling=self._resampling,
                src_nodata=self.nodata,
                nodata=0,
                dtype=self.src.dtypes[0],
            )
        return self.vrt

    def _read_resampled(self, win: PixelWindow) -> Any | None:
        """The window by a resampled windowed read, or None when the warper must do it."""
        import math

        from rasterio.windows import Window

        st, gt = self.src.transform, self.grid.transform
        col = (gt.c + win.col_off * gt.a - st.c) / st.a
        row = (gt.f + win.row_off * gt.e - st.f) / st.e
        width = win.width * gt.a / st.a
        height = win.height * gt.e / st.e
        eps = 1e-9
        if (
            col < -eps
            or row < -eps
            or col + width > self.src.width + eps
            or row + height > self.src.height + eps
        ):
            return None
        c0, r0 = max(math.floor(col) - 1, 0), max(math.floor(row) - 1, 0)
        c1 = min(math.ceil(col + width) + 1, self.src.width)
        r1 = min(math.ceil(row + height) + 1, self.src.height)
        native = self.src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
        if (native == self.nodata).any():
            return None
        return self.src.read(
            1,
            window=Window(max(col, 0.0), max(row, 0.0), width, height),
            out_shape=(win.height, win.width),
            resampling=self._resampling,
        )

    def read(self, win: PixelWindow) -> Any:
        import numpy as np
        import rasterio
        from rasterio._err import CPLE_BaseError
        from rasterio.windows import Window

        try:
            if self.offset is None:
                if self.direct_resample:
                    out = self._read_resampled(win)
                    if out is not None:
                        return out
                return self._warped().read(1, window=win.to_rasterio())
            out = np.zeros((win.height, win.width), dtype=self.src.dtypes[0])
            c0 = self.offset[0] + win.col_off
            r0 = self.offset[1] + win.row_off
            cs, rs = max(c0, 0), max(r0, 0)
            ce = min(c0 + win.width, self.src.width)
            re_ = min(r0 + win.height, self.src.height)
            if ce > cs and re_ > rs:
                out[rs - r0 : re_ - r0, cs - c0 : ce - c0] = self.src.read(
                    1, window=Window(cs, rs, ce - cs, re_ - rs)
                )
            return out
        except (rasterio.errors.RasterioError, CPLE_BaseError) as exc:
            raise InputError(
                f"band {self.name} of product {self.product_uri} is corrupt or truncated: "
                f"{_first_line(exc)}"
            ) from None

    def close(self) -> None:
        if self.vrt is not None:
            self.vrt.close()


# --- grid --------------------------------------------------------------------------------------


def _grid_of(ds: Any) -> TargetGrid:
    return TargetGrid(ds.crs, ds.transform, ds.width, ds.height)


def _box(bounds: tuple[float, float, float, float]) -> Any:
    from shapely.geometry import box

    return box(*bounds)


def resolve_grid(params: PreprocessParams, product: Product, ref: Any) -> TargetGrid:
    """The output grid: the B02 grid (cropped to the AOI on whole pixels) or ``--grid-like``'s."""
    from rasterio.crs import CRS
    from rasterio.warp import transform_bounds

    aoi = None
    if params.aoi:
        from candela_sdk.aoi import load_aoi

        aoi = load_aoi(params.aoi).geometry

    if params.grid_like:
        from affine import Affine

        from candela_sdk.grids import grid_of

        g = grid_of(params.grid_like)
        grid = TargetGrid(CRS.from_user_input(g.crs), Affine(*g.transform), g.width, g.height)
        product_fp = _box(transform_bounds(ref.crs, grid.crs, *ref.bounds, densify_pts=21))
        grid_fp = _box(grid.bounds)
        if not product_fp.intersects(grid_fp):
            raise NoDataError(
                f"product {product.uri} does not overlap the grid of {params.grid_like}"
            )
        if aoi is not None:
            from candela_sdk.aoi import to_crs

            if not to_crs(aoi, grid.crs).intersects(product_fp.intersection(grid_fp)):
                raise NoDataError(
                    f"the AOI does not intersect product {product.uri} on the grid of "
                    f"{params.grid_like}"
                )
        return grid

    grid = _grid_of(ref)
    if aoi is None:
        return grid
    from candela_sdk.aoi import to_crs

    geom = to_crs(aoi, grid.crs)
    footprint = _box(grid.bounds)
    if not geom.intersects(footprint):
        raise NoDataError(f"the AOI does not intersect the footprint of product {product.uri}")
    win = bounds_to_window(
        grid.transform, grid.width, grid.height, geom.intersection(footprint).bounds
    )
    if win is None:
        raise NoDataError(f"the AOI does not cover a whole pixel of product {product.uri}")
    log.info(
        "AOI crop: %d×%d pixels at column %d, row %d",
        win.width,
        win.height,
        win.col_off,
        win.row_off,
    )
    return TargetGrid(grid.crs, window_transform(grid.transform, win), win.width, win.height)


def aoi_clip(params: PreprocessParams, grid: TargetGrid) -> Any | None:
    """The AOI in the grid's CRS when the pixels of the output grid outside it must be nodata:
    a polygon that is not its own lon/lat bounding box (the grid covers its bounding box on
    whole pixels). ``None`` for no AOI, a bbox-shaped one, a point or a line: the crop is the
    area."""
    if not params.aoi:
        return None
    from shapely.geometry import box

    from candela_sdk.aoi import load_aoi, to_crs

    geom = load_aoi(params.aoi).geometry
    if geom.area <= 0 or geom.area >= box(*geom.bounds).area * (1 - 1e-9):
        return None
    return to_crs(geom, grid.crs)


def inside_aoi(clip: Any, grid: TargetGrid, win: PixelWindow) -> Any:
    """Boolean array of ``win``: True for the pixels whose centre lies in ``clip``."""
    from rasterio.features import geometry_mask
    from shapely.geometry import mapping

    return geometry_mask(
        [mapping(clip)],
        out_shape=(win.height, win.width),
        transform=window_transform(grid.transform, win),
        invert=True,
    )


# --- radiometry --------------------------------------------------------------------------------


def radiometry(product: Product, bands: list[str]) -> tuple[list[float], list[float], str]:
    """Scale and offset per band so that reflectance = DN × scale + offset, and a note on why.

    Sentinel-2 baseline ≥ 04.00 gives reflectance = (DN + RADIO_ADD_OFFSET) / QUANTIFICATION_VALUE
    (L1C) or (DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE (L2A), hence scale 1/Q and offset
    ADD_OFFSET/Q. Older baselines have no offset (0).
    """
    q = product.quantification
    if not q:
        raise InputError(
            f"--reflectance: product {product.uri} gives no quantification value in its metadata"
        )
    if product.baseline and product.baseline >= "04.00" and not product.offsets:
        log.warning(
            "baseline %s but no radiometric offsets in the MTD: using offset 0", product.baseline
        )
    scales = [1.0 / q for _ in bands]
    offsets = [product.offsets.get(b, 0.0) / q for b in bands]
    return scales, offsets, product.radiometry_note


# --- the run ------------------------------------------------------------------------------------


def preprocess(params: PreprocessParams) -> dict[str, Any]:
    """Run the whole preprocessing of one product; returns the JSON result of the service."""
    import numpy as np

    from candela_sdk.cog import CogSpec, cog_writer

    product = open_product(params.product)
    bands = list(params.bands)
    log.info(
        "product %s: layout %s, %s, acquired %s, bands %s",
        product.product_id,
        product.layout,
        product.level,
        product.datetime.isoformat(),
        " ".join(bands),
    )
    outs = output_uris(params.output, product.product_id)
    if params.grid_like and storage.parse(params.grid_like).uri == outs.stack:
        raise InputError("--grid-like and --output name the same file")
    _preflight_output(outs.stack)
    scales: list[float] | None = None
    offsets: list[float] | None = None
    if params.reflectance:
        scales, offsets, note = radiometry(product, bands)
        log.info("reflectance scaling: %s", note)

    published: list[str] = []
    # rasterio passes an integer GDAL_CACHEMAX to GDALSetCacheMax64: bytes, not MB
    with (
        storage.rasterio_env(GDAL_CACHEMAX=GDAL_CACHE_MB * 1024 * 1024),
        contextlib.ExitStack() as stack,
    ):
        ref = _open_band(stack, product, REFERENCE_BAND)
        sources = {b: ref if b == REFERENCE_BAND else _open_band(stack, product, b) for b in bands}
        scl_src = None
        if product.level == "L2A" and product.layout == "safe":
            if not product.scl_path:
                raise InputError(
                    f"scene classification (SCL) missing from L2A product {product.uri}"
                )
            scl_src = _open_scl(stack, product)
        grid = resolve_grid(params, product, ref)
        # a polygon AOI: its bounding box is read, the pixels outside it become nodata (0) in
        # the stack (and invalid in the valid mask), so that every later step leaves them out
        clip = aoi_clip(params, grid)
        if clip is not None:
            log.info("AOI polygon: pixels outside it are nodata")
        readers = [_BandReader(b, product.uri, sources[b], grid, params.resampling) for b in bands]
        for r in readers:
            stack.callback(r.close)
        scl_reader = None
        if scl_src is not None:
            scl_reader = _BandReader("SCL", product.uri, scl_src, grid, "nearest")
            stack.callback(scl_reader.close)

        spec = CogSpec(
            width=grid.width,
            height=grid.height,
            count=len(bands),
            dtype="uint16",
            crs=grid.crs,
            transform=grid.transform,
            nodata=0,
            band_names=bands,
            scales=scales,
            offsets=offsets,
            tags={
                "PRODUCT_ID": product.product_id,
                "PRODUCT_URI": product.uri,
                "ACQUISITION_DATETIME": _iso(product.datetime),
                "PROCESSING_LEVEL": product.level,
                "RESAMPLING": params.resampling,
                "SOFTWARE": f"candela-preprocess {code_version()}",
            },
            band_tags=[
                {
                    "BAND_NAME": b,
                    "NATIVE_RESOLUTION_M": str(BANDS[b].resolution),
                    "CENTER_WAVELENGTH_UM": str(BANDS[b].center_wavelength),
                }
                for b in bands
            ],
            overview_resampling="average",
        )
        mask_spec = CogSpec(
            width=grid.width,
            height=grid.height,
            count=1,
            dtype="uint8",
            crs=grid.crs,
            transform=grid.transform,
            nodata=None,
            band_names=["valid"],
            tags={"VALUES": "1 valid, 0 invalid", "SCL_VALID_CLASSES": str(SCL_VALID_CLASSES)},
            overview_resampling="nearest",
        )
        total = grid.width * grid.height
        valid_count = 0
        in_aoi = 0  # pixels inside a polygon AOI (``clip``)
        started = time.monotonic()
        gate = params.quality_gate
        sample = PixelSample(sample_step(grid.width, grid.height, params.gate_sample_pixels))
        gate_summary: dict[str, Any] | None = None
        report_published = False
        docs_dir = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="candela-gate-", dir=get_settings().scratch)
            )
        )
        read_block = _parallel_reader(stack, readers, scl_reader)
        try:
            with cog_writer(outs.stack, spec) as writer:
                with (
                    cog_writer(outs.valid, mask_spec)
                    if scl_reader is not None
                    else contextlib.nullcontext()
                ) as mask_writer:
                    n_blocks = math.ceil(grid.width / params.block_size) * math.ceil(
                        grid.height / params.block_size
                    )
                    done_blocks, reported = 0, 0
                    for win, data, scl in read_block(
                        block_windows(grid.width, grid.height, params.block_size)
                    ):
                        done_blocks += 1
                        if n_blocks >= 4 and done_blocks * 10 // n_blocks > reported:
                            reported = done_blocks * 10 // n_blocks  # every tenth of the blocks
                            log.info(
                                "progress: %d of %d blocks (%d%%), %.0f s",
                                done_blocks,
                                n_blocks,
                                100 * done_blocks // n_blocks,
                                time.monotonic() - started,
                            )
                        inside = None
                        if clip is not None:
                            inside = inside_aoi(clip, grid, win)
                            data = np.where(inside, data, 0).astype(data.dtype, copy=False)
                            in_aoi += int(np.count_nonzero(inside))
                        valid = np.all(data != 0, axis=0)
                        if scl is not None and mask_writer is not None:
                            valid &= np.isin(scl, SCL_VALID_CLASSES)
                            mask_writer.write(
                                valid.astype("uint8")[np.newaxis], window=win.to_rasterio()
                            )
                        writer.write(data, window=win.to_rasterio())
                        valid_count += int(np.count_nonzero(valid))
                        if gate:
                            sample.add(data, valid, win.col_off, win.row_off, inside)
                    log.info(
                        "stacked %d×%d pixels in %.1f s",
                        grid.width,
                        grid.height,
                        time.monotonic() - started,
                    )
                    if valid_count == 0:
                        raise NoDataError(
                            f"no valid pixel of product {product.uri} on the output grid"
                        )
                    if gate:
                        gate_summary = _quality_gate(
                            params, bands, writer.dataset, sample, docs_dir, outs
                        )
                        if not gate_summary["passed"]:
                            _publish_folder(docs_dir, outs.report)
                            raise QualityGateError(
                                f"{gate_summary['unmet']} of {gate_summary['expectations']} "
                                f"expectations unmet: {'; '.join(gate_summary['failures'])} "
                                f"(report: {outs.report}/index.html)"
                            )
                if scl_reader is not None:
                    published.append(outs.valid)
            published.append(outs.stack)
            log.info("wrote the COG(s) in %.1f s in all", time.monotonic() - started)
            # of the pixels the area covers (a polygon AOI's, else the grid's)
            valid_fraction = valid_count / max(in_aoi if clip is not None else total, 1)
            if gate_summary is not None:
                _publish_folder(docs_dir, outs.report)
                report_published = True
            item = build_item(
                params,
                product,
                bands,
                outs,
                scales,
                offsets,
                grid,
                valid_fraction,
                scl_reader,
                gate_summary,
            )
            storage.write_text(outs.item, json.dumps(item, indent=2))
            published.append(outs.item)
        except BaseException:
            for uri in published:
                _remove(uri)
            if report_published:
                _remove(outs.report, recursive=True)
            raise
    return {
        "output": outs.stack,
        "item": outs.item,
        "valid_mask": outs.valid if scl_reader is not None else None,
        "product_id": product.product_id,
        "product": product.uri,
        "layout": product.layout,
        "level": product.level,
        "datetime": _iso(product.datetime),
        "datetime_precision": product.datetime_precision,
        "bands": bands,
        "resampled_bands": [r.name for r in readers if r.resampled],
        "resampling": params.resampling,
        "width": grid.width,
        "height": grid.height,
        "crs": _crs_text(grid.crs),
        "transform": list(grid.transform)[:6],
        "valid_fraction": round(valid_fraction, 6),
        "reflectance": ({"scales": scales, "offsets": offsets} if scales is not None else None),
        "quality_gate": _gate_brief(gate_summary, outs) if gate_summary is not None else None,
    }


def _gate_brief(summary: dict[str, Any], outs: Outputs) -> dict[str, Any]:
    brief = {k: v for k, v in summary.items() if k != "failures"}
    brief["report"] = f"{outs.report}/index.html"
    return brief


def _parallel_reader(
    stack: contextlib.ExitStack, readers: list[_BandReader], scl_reader: _BandReader | None
) -> Callable[[Any], Any]:
    """Reads the bands of each window in ``lanes`` threads, one window ahead.

    A rasterio dataset must not be used by two threads at once: each reader belongs to one lane
    (a single-thread executor, so its reads run in order); GDAL releases the GIL while it
    decompresses and resamples, so the lanes and the main thread (which writes) overlap.
    """
    import numpy as np

    lanes = max(1, min(READ_THREADS, len(readers)))
    pools = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"read{i}") for i in range(lanes)]
    for pool in pools:
        stack.callback(pool.shutdown, wait=True, cancel_futures=True)
    all_readers: list[_BandReader] = list(readers) + ([scl_reader] if scl_reader else [])
    assignment = [all_readers[i::lanes] for i in range(lanes)]

    def lane_read(group: list[_BandReader], win: PixelWindow) -> dict[int, Any]:
        return {id(r): r.read(win) for r in group}

    def submit(win: PixelWindow) -> tuple[PixelWindow, list[Future[dict[int, Any]]]]:
        return win, [pools[i].submit(lane_read, g, win) for i, g in enumerate(assignment)]

    def gather(
        job: tuple[PixelWindow, list[Future[dict[int, Any]]]],
    ) -> tuple[PixelWindow, Any, Any]:
        win, futures = job
        got: dict[int, Any] = {}
        for f in futures:
            got.update(f.result())
        data = np.empty((len(readers), win.height, win.width), dtype="uint16")
        for i, r in enumerate(readers):
            data[i] = got[id(r)]
        return win, data, got.get(id(scl_reader)) if scl_reader is not None else None

    def blocks(windows: Any) -> Any:
        pending = None
        for win in windows:
            job = submit(win)
            if pending is not None:
                yield gather(pending)
            pending = job
        if pending is not None:
            yield gather(pending)

    return blocks


def _quality_gate(
    params: PreprocessParams,
    bands: list[str],
    ds: Any,
    sample: PixelSample,
    docs_dir: Path,
    outs: Outputs,
) -> dict[str, Any]:
    """Run the GX gate on the pixel sample (and the pair's grids) of the written stack."""
    from candela_preprocess.quality import GateThresholds, run_gate

    started = time.monotonic()
    grids = None
    if params.grid_like:
        from candela_sdk.grids import grid_of

        like = grid_of(params.grid_like)
        grids = [
            _grid_row("output", ds.crs, list(ds.transform)[:6], ds.width, ds.height),
            _grid_row("grid_like", like.crs, list(like.transform)[:6], like.width, like.height),
        ]
    result = run_gate(
        sample=sample,
        columns=[d or f"band{i}" for i, d in enumerate(ds.descriptions, start=1)],
        bands=bands,
        nodata=ds.nodata,
        thresholds=GateThresholds(
            min_valid_fraction=params.gate_min_valid_fraction,
            min_value=params.gate_min_value,
            max_value=params.gate_max_value,
            in_range_fraction=params.gate_in_range_fraction,
            sample_pixels=params.gate_sample_pixels,
        ),
        grids=grids,
        docs_dir=docs_dir,
        report=params.quality_report,
    )
    summary = dict(result.summary)
    summary["seconds"] = round(time.monotonic() - started, 3)
    summary["failures"] = result.failures
    log.info(
        "quality gate %s: %d of %d expectations met on %d sampled pixels (%.1f s)",
        "passed" if result.passed else "FAILED",
        summary["expectations"] - summary["unmet"],
        summary["expectations"],
        summary["sample_pixels"],
        summary["seconds"],
    )
    return summary


def _grid_row(
    name: str, crs: Any, transform: list[float], width: int, height: int
) -> dict[str, Any]:
    from rasterio.crs import CRS

    row: dict[str, Any] = {"dataset": name, "crs": _crs_text(CRS.from_user_input(crs))}
    for key, value in zip("abcdef", transform, strict=True):
        row[f"transform_{key}"] = round(float(value), 9)
    row["width"] = int(width)
    row["height"] = int(height)
    return row


def _open_scl(stack: contextlib.ExitStack, product: Product) -> Any:
    import rasterio

    assert product.scl_path
    try:
        return stack.enter_context(rasterio.open(product.scl_path))
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(
            f"SCL of product {product.uri} is not a readable raster: {_first_line(exc)}"
        ) from None


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _crs_text(crs: Any) -> str:
    code = crs.to_epsg()
    return f"EPSG:{code}" if code else crs.to_wkt()


def build_item(
    params: PreprocessParams,
    product: Product,
    bands: list[str],
    outs: Outputs,
    scales: list[float] | None,
    offsets: list[float] | None,
    grid: TargetGrid,
    valid_fraction: float,
    scl_reader: Any,
    gate_summary: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The STAC item of the output stack (and validity mask), with provenance."""
    from candela_sdk.stac import COG_MEDIA_TYPE, make_item

    eo_bands = []
    raster_bands = []
    for i, b in enumerate(bands):
        info = BANDS[b]
        eo: dict[str, Any] = {
            "name": b,
            "center_wavelength": info.center_wavelength,
            "full_width_half_max": info.fwhm,
        }
        if info.common_name:
            eo["common_name"] = info.common_name
        eo_bands.append(eo)
        rb: dict[str, Any] = {
            "nodata": 0,
            "data_type": "uint16",
            "spatial_resolution": abs(grid.transform.a),
        }
        if scales is not None and offsets is not None:
            rb["scale"] = scales[i]
            rb["offset"] = offsets[i]
        raster_bands.append(rb)
    assets: dict[str, dict[str, Any]] = {
        "data": {
            "href": outs.stack,
            "type": COG_MEDIA_TYPE,
            "title": f"Sentinel-2 {product.level} bands on the B02 grid",
            "roles": ["data"],
            "eo:bands": eo_bands,
            "raster:bands": raster_bands,
        }
    }
    if scl_reader is not None:
        assets["valid"] = {
            "href": outs.valid,
            "type": COG_MEDIA_TYPE,
            "title": "validity mask from the L2A scene classification (1 valid, 0 invalid)",
            "roles": ["data", "validity-mask"],
            "raster:bands": [{"data_type": "uint8"}],
        }
    if gate_summary is not None:
        assets["quality_report"] = {
            "href": f"{outs.report}/index.html",
            "type": "text/html",
            "title": "quality gate report"
            + (
                " (Great Expectations Data Docs)"
                if gate_summary.get("validated_by") == "great_expectations"
                else " (checks evaluated without Great Expectations; Data Docs on request)"
            ),
            "roles": ["metadata", "qa"],
        }
    start = end = when = None
    if product.datetime_precision == "day":
        start = product.datetime
        end = product.datetime + dt.timedelta(days=1) - dt.timedelta(seconds=1)
    else:
        when = product.datetime
    item_id = storage.parse(outs.stack).name.rsplit(".", 1)[0]
    version = code_version()
    item = make_item(
        item_id=item_id,
        footprint_of=outs.stack,
        datetime=when,
        start=start,
        end=end,
        assets=assets,
        properties={
            "platform": "sentinel-2",
            "instruments": ["msi"],
            "processing:level": product.level,
            "processing:lineage": (
                f"bands {', '.join(bands)} of {product.product_id} resampled "
                f"({params.resampling}) onto the B02 grid and stacked by candela-preprocess"
            ),
            "candela:valid_fraction": round(valid_fraction, 6),
            **(
                {"candela:quality_gate": _gate_brief(gate_summary, outs)}
                if gate_summary is not None
                else {}
            ),
            "candela:provenance": {
                "product": product.uri,
                "product_id": product.product_id,
                "layout": product.layout,
                "acquired": _iso(product.datetime),
                "datetime_precision": product.datetime_precision,
                "processing_baseline": product.baseline,
                "radiometry": product.radiometry_note,
                "parameters": params.model_dump(mode="json"),
                "code_version": version,
                "image": get_settings().image,
            },
        },
        software={"candela-preprocess": version},
    )
    for ext in (EO_EXT, RASTER_EXT):
        if ext not in item["stac_extensions"]:
            item["stac_extensions"].append(ext)
    return item
