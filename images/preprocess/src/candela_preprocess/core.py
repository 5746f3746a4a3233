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
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from candela_preprocess import code_version
from candela_preprocess.bands import REFERENCE_BAND, S2_BANDS
from candela_preprocess.gridmath import (
    PixelWindow,
    block_windows,
    bounds_to_window,
    integer_offset,
    window_transform,
)
from candela_preprocess.layouts import Product, open_product
from candela_sdk import storage
from candela_sdk.errors import InputError, NoDataError, OutputError

if TYPE_CHECKING:
    from candela_preprocess.service import PreprocessParams

log = logging.getLogger(__name__)

GDAL_CACHE_MB = 256

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

    return Outputs(stack=loc.uri, item=sibling(stem + ".json"), valid=sibling(stem + "_valid.tif"))


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


def _remove(uri: str) -> None:
    loc = storage.parse(uri)
    try:
        if loc.scheme == "file":
            Path(loc.path).unlink(missing_ok=True)
        else:
            storage.s3_client().delete_object(Bucket=loc.bucket, Key=loc.path)
    except Exception as exc:  # noqa: BLE001 - best effort cleanup, the original error matters
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
        if src.crs == grid.crs:
            self.offset = integer_offset(src.transform, grid.transform)
        if self.offset is None:
            self.vrt = WarpedVRT(
                src,
                crs=grid.crs,
                transform=grid.transform,
                width=grid.width,
                height=grid.height,
                resampling=Resampling[resampling],
                src_nodata=src.nodata if src.nodata is not None else 0,
                nodata=0,
                dtype=src.dtypes[0],
            )
        log.debug("band %s: %s", name, "direct read" if self.vrt is None else "warped")

    @property
    def resampled(self) -> bool:
        return self.vrt is not None

    def read(self, win: PixelWindow) -> Any:
        import numpy as np
        import rasterio
        from rasterio._err import CPLE_BaseError
        from rasterio.windows import Window

        try:
            if self.vrt is not None:
                return self.vrt.read(1, window=win.to_rasterio())
            assert self.offset is not None
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
        from candela_preprocess.aoi import load_aoi

        aoi = load_aoi(params.aoi)

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
            from candela_preprocess.aoi import to_crs

            if not to_crs(aoi, grid.crs).intersects(product_fp.intersection(grid_fp)):
                raise NoDataError(
                    f"the AOI does not intersect product {product.uri} on the grid of "
                    f"{params.grid_like}"
                )
        return grid

    grid = _grid_of(ref)
    if aoi is None:
        return grid
    from candela_preprocess.aoi import to_crs

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
                    "NATIVE_RESOLUTION_M": str(S2_BANDS[b].resolution),
                    "CENTER_WAVELENGTH_UM": str(S2_BANDS[b].center_wavelength),
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
        started = time.monotonic()
        try:
            with cog_writer(outs.stack, spec) as writer:
                with (
                    cog_writer(outs.valid, mask_spec)
                    if scl_reader is not None
                    else contextlib.nullcontext()
                ) as mask_writer:
                    for win in block_windows(grid.width, grid.height, params.block_size):
                        data = np.empty((len(bands), win.height, win.width), dtype="uint16")
                        for i, reader in enumerate(readers):
                            data[i] = reader.read(win)
                        valid = np.all(data != 0, axis=0)
                        if scl_reader is not None and mask_writer is not None:
                            valid &= np.isin(scl_reader.read(win), SCL_VALID_CLASSES)
                            mask_writer.write(
                                valid.astype("uint8")[np.newaxis], window=win.to_rasterio()
                            )
                        writer.write(data, window=win.to_rasterio())
                        valid_count += int(valid.sum())
                    log.info(
                        "stacked %d×%d pixels in %.1f s; writing the COG",
                        grid.width,
                        grid.height,
                        time.monotonic() - started,
                    )
                    if valid_count == 0:
                        raise NoDataError(
                            f"no valid pixel of product {product.uri} on the output grid"
                        )
                if scl_reader is not None:
                    published.append(outs.valid)
            published.append(outs.stack)
            valid_fraction = valid_count / total
            item = build_item(
                params, product, bands, outs, scales, offsets, grid, valid_fraction, scl_reader
            )
            storage.write_text(outs.item, json.dumps(item, indent=2))
            published.append(outs.item)
        except BaseException:
            for uri in published:
                _remove(uri)
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
    }


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
) -> dict[str, Any]:
    """The STAC item of the output stack (and validity mask), with provenance."""
    from candela_sdk.stac import COG_MEDIA_TYPE, make_item

    eo_bands = []
    raster_bands = []
    for i, b in enumerate(bands):
        info = S2_BANDS[b]
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
                "image": os.environ.get("CANDELA_IMAGE", ""),
            },
        },
        software={"candela-preprocess": version},
    )
    for ext in (EO_EXT, RASTER_EXT):
        if ext not in item["stac_extensions"]:
            item["stac_extensions"].append(ext)
    return item
