"""The ``datamining`` service: a stack cut into patches, their features, embeddings and
quicklooks, stored in ``candela.mine_patches``.

Steps: open the stack (band names from the band descriptions, reflectance from the scales and
offsets, validity from nodata) → refuse a patch size larger than the stack (exit 2) → skip a stack
already mined at this size (exit 3, nothing rewritten) → read one strip of patch rows at a time,
keep the patches with at least ``min_valid`` valid pixels and compute their features
(:mod:`candela_mine.features`), embedding (:mod:`candela_mine.embed`) and RGB quicklook → no patch
at all is "no data" (exit 3) → one transaction: lock the stack, check again, write the
quicklooks, COPY the rows (:mod:`candela_sdk.mining`), commit. Any failure rolls the rows back
and deletes the quicklooks written, so nothing is half-written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from candela_mine import features as F
from candela_mine.params import MineParams
from candela_sdk import storage
from candela_sdk.errors import InputError, NoDataError, OutputError

log = logging.getLogger(__name__)

QUICKLOOK_MAX = 0.3  # reflectance shown as full brightness


@dataclass
class Stack:
    uri: str
    width: int
    height: int
    crs: Any
    transform: Any
    band_names: list[str]
    scales: np.ndarray
    offsets: np.ndarray
    nodata: float | None
    product_id: str | None
    acquired: dt.datetime | None


@dataclass
class Mined:
    rows: list[dict[str, Any]] = field(default_factory=list)
    pngs: list[bytes] = field(default_factory=list)
    candidates: int = 0
    any_valid: bool = False


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def open_stack(uri: str) -> Stack:
    import rasterio

    try:
        with storage.rasterio_env(), rasterio.open(storage.gdal_path(uri)) as ds:
            if ds.crs is None:
                raise InputError(f"the stack {uri} has no coordinate reference system")
            tags = ds.tags()
            names = [d or f"band{i + 1}" for i, d in enumerate(ds.descriptions)]
            return Stack(
                uri=uri,
                width=ds.width,
                height=ds.height,
                crs=ds.crs,
                transform=ds.transform,
                band_names=names,
                scales=np.asarray(ds.scales, np.float64),
                offsets=np.asarray(ds.offsets, np.float64),
                nodata=ds.nodata,
                product_id=tags.get("PRODUCT_ID"),
                acquired=_parse_time(tags.get("ACQUISITION_DATETIME")),
            )
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"cannot read the stack {uri}: {exc}") from None


def offsets(length: int, size: int, stride: int) -> list[int]:
    return list(range(0, length - size + 1, stride))


def quicklook_png(rgb: np.ndarray, valid: np.ndarray) -> bytes:
    """RGBA PNG: reflectance 0–:data:`QUICKLOOK_MAX` stretched to 0–255, invalid transparent."""
    from PIL import Image

    scaled = np.clip(np.nan_to_num(rgb) / QUICKLOOK_MAX, 0.0, 1.0) ** (1 / 1.4) * 255
    img = np.dstack([scaled.transpose(1, 2, 0).astype(np.uint8), np.where(valid, 255, 0)])
    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8), "RGBA").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def footprints(stack: Stack, windows: list[tuple[int, int]], size: int) -> list[dict[str, Any]]:
    """Per (row_off, col_off): WGS 84 bbox and GeoJSON polygon (counter-clockwise) of the patch."""
    from rasterio.warp import transform

    xs: list[float] = []
    ys: list[float] = []
    for r, c in windows:
        for cc, rr in ((c, r + size), (c + size, r + size), (c + size, r), (c, r)):
            x, y = stack.transform @ (cc, rr)
            xs.append(x)
            ys.append(y)
    lons, lats = transform(stack.crs, "EPSG:4326", xs, ys) if xs else ([], [])
    out = []
    for i in range(len(windows)):
        ring = [(float(lons[4 * i + k]), float(lats[4 * i + k])) for k in range(4)]
        ring.append(ring[0])
        lo = [p[0] for p in ring]
        la = [p[1] for p in ring]
        out.append(
            {
                "bbox": (min(lo), min(la), max(lo), max(la)),
                "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring]]},
            }
        )
    return out


def _crs_text(crs: Any) -> str:
    code = crs.to_epsg()
    return f"EPSG:{code}" if code else crs.to_wkt()


def _stack_stats(stack: Stack) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation of the valid pixels (a decimated read)."""
    import rasterio

    factor = max(1, max(stack.width, stack.height) // 1024)
    shape = (len(stack.band_names), stack.height // factor or 1, stack.width // factor or 1)
    with storage.rasterio_env(), rasterio.open(storage.gdal_path(stack.uri)) as ds:
        raw = ds.read(out_shape=shape).astype(np.float64)
    valid = _valid(raw, stack.nodata)
    if not valid.any():
        return np.zeros(shape[0]), np.ones(shape[0])
    v = raw[:, valid]
    std = v.std(axis=1)
    return v.mean(axis=1), np.where(std > 0, std, 1.0)


def _valid(raw: np.ndarray, nodata: float | None) -> np.ndarray:
    ok = np.isfinite(raw).all(axis=0)
    if nodata is not None:
        ok &= (raw != nodata).all(axis=0)
    return ok


def _radar(params: MineParams, stack: Stack) -> np.ndarray | None:
    if not params.radar:
        return None
    from candela_sdk.sentinel1 import TargetGrid, read_s1, to_grid

    scene = read_s1(params.radar)
    data, _report = to_grid(
        scene, TargetGrid(stack.crs, stack.transform, stack.width, stack.height)
    )
    pols = [p.upper() for p in scene.polarisations]
    if "VV" not in pols or "VH" not in pols:
        raise InputError(f"the radar {params.radar} lacks VV or VH (has {', '.join(pols)})")
    return np.stack([data[pols.index("VV")], data[pols.index("VH")]]).astype(np.float32)


def cut(params: MineParams, stack: Stack, encoder: Any = None) -> Mined:
    """Features, embedding and quicklook of every patch with enough valid pixels."""
    import rasterio
    from rasterio.windows import Window

    size, stride = params.size, int(params.stride or params.size)
    idx = F.band_index(stack.band_names)
    rgb_idx = [idx["B04"], idx["B03"], idx["B02"]]
    radar = _radar(params, stack)
    if encoder is not None:
        if encoder.bands != len(stack.band_names):
            raise InputError(
                f"the encoder {encoder.name} expects {encoder.bands} bands, the stack has "
                f"{len(stack.band_names)}"
            )
        if size <= 2 * encoder.halo:
            raise InputError(f"--size must exceed {2 * encoder.halo} px for the encoder")
        mean, std = _stack_stats(stack)
    out = Mined()
    sensors = ["s2", "s1"] if radar is not None else ["s2"]
    fset = F.feature_set(radar is not None)
    with storage.rasterio_env(), rasterio.open(storage.gdal_path(stack.uri)) as ds:
        for r in offsets(stack.height, size, stride):
            raw = ds.read(window=Window(0, r, stack.width, size)).astype(np.float32)
            strip_valid = _valid(raw, stack.nodata)
            out.any_valid |= bool(strip_valid.any())
            refl = raw * stack.scales[:, None, None].astype(np.float32) + stack.offsets[
                :, None, None
            ].astype(np.float32)
            for c in offsets(stack.width, size, stride):
                out.candidates += 1
                valid = strip_valid[:, c : c + size]
                share = F.valid_share(valid)
                if share < params.min_valid or share == 0.0:
                    continue
                patch = refl[:, :, c : c + size]
                s1 = radar[:, r : r + size, c : c + size] if radar is not None else None
                feats = F.patch_features(patch, stack.band_names, valid, s1)
                embedding = None
                if encoder is not None:
                    z = (raw[:, :, c : c + size] - mean[:, None, None]) / std[:, None, None]
                    embedding = encoder.embed(z.transpose(1, 2, 0), valid)
                out.rows.append(
                    {
                        "stack_uri": stack.uri,
                        "product_id": stack.product_id,
                        "dataset": params.dataset,
                        "acquired": stack.acquired,
                        "sensors": sensors,
                        "row_off": r,
                        "col_off": c,
                        "size": size,
                        "crs": _crs_text(stack.crs),
                        "valid_share": share,
                        "feature_set": fset,
                        "features": feats.tolist(),
                        "embedding": embedding,
                        "truth": params.truth,
                        "mined_by_run": params.run_id,
                    }
                )
                out.pngs.append(quicklook_png(patch[rgb_idx], valid))
    return out


def default_quicklooks(stack_uri: str, size: int) -> str:
    from candela_sdk.settings import get_settings

    digest = hashlib.sha256(stack_uri.encode()).hexdigest()[:16]
    root = storage.parse(get_settings().storage)
    return root.join("mining", "quicklooks", digest, f"s{size}").uri


def _dsn(params: MineParams) -> str:
    from candela_sdk.settings import platform_dsn

    dsn = params.dsn or platform_dsn()
    if not dsn:
        raise OutputError(
            "no platform database: pass --dsn, set CANDELA_DATABASE_URL or start the platform"
        )
    return dsn


def _connect(dsn: str) -> Any:
    import psycopg

    try:
        return psycopg.connect(dsn, connect_timeout=10)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OutputError(f"cannot connect to the platform database ({first})") from None


def _already(conn: Any, stack_uri: str, size: int) -> None:
    import psycopg

    from candela_sdk.mining import mined

    try:
        count, run = mined(conn, stack_uri, size)
    except psycopg.errors.UndefinedTable:
        raise OutputError(
            "the mining tables are missing: apply the platform's migrations (candela up, "
            "candela cluster init)"
        ) from None
    if count:
        raise NoDataError(
            f"skipped: {stack_uri} is already mined at {size} px ({count} patches, run "
            f"{run or 'unknown'}); nothing rewritten"
        )


def run(params: MineParams) -> dict[str, Any]:
    from candela_sdk.mining import copy_patches, ensure_feature_set, lock_stack

    started = time.monotonic()
    stack_uri = storage.to_uri(params.stack)
    stack = open_stack(stack_uri)
    if params.size > stack.width or params.size > stack.height:
        raise InputError(
            f"patch size {params.size} px is larger than the stack ({stack.width} × "
            f"{stack.height} px)"
        )
    F.band_index(stack.band_names)
    dsn = _dsn(params)
    with _connect(dsn) as conn:
        _already(conn, stack_uri, params.size)
        conn.rollback()
    encoder = None
    if params.encoder:
        from candela_mine.embed import load_registered

        encoder = load_registered(params.encoder)
    t0 = time.monotonic()
    mined = cut(params, stack, encoder)
    cut_s = time.monotonic() - t0
    if not mined.rows:
        if not mined.any_valid:
            raise NoDataError(f"no patches: the stack {stack_uri} has no valid pixels")
        raise NoDataError(
            f"no patches: none of the {mined.candidates} patches of {params.size} px has "
            f"≥ {params.min_valid:.0%} valid pixels"
        )
    windows = [(r["row_off"], r["col_off"]) for r in mined.rows]
    for row, fp in zip(mined.rows, footprints(stack, windows, params.size), strict=True):
        row["west"], row["south"], row["east"], row["north"] = fp["bbox"]
        row["footprint"] = fp["geometry"]
    folder = storage.parse(
        storage.to_uri(params.quicklooks) if params.quicklooks else
        default_quicklooks(stack_uri, params.size)
    )  # fmt: skip
    for row in mined.rows:
        row["quicklook_uri"] = folder.join(f"r{row['row_off']}_c{row['col_off']}.png").uri
    names = F.feature_names(mined.rows[0]["sensors"] == ["s2", "s1"])
    fset = mined.rows[0]["feature_set"]
    written: list[str] = []
    copy_s = 0.0
    leftovers = 0  # quicklooks of an interrupted earlier attempt, replaced
    try:
        with _connect(dsn) as conn:
            with conn.transaction():
                lock_stack(conn, stack_uri)
                _already(conn, stack_uri, params.size)
                for row, png in zip(mined.rows, mined.pngs, strict=True):
                    if storage.exists(row["quicklook_uri"]):
                        # the stack's own folder, its lock held and no row committed: the
                        # quicklook of a mining killed before its commit (nothing refers to
                        # it); a folder given by the caller may hold anything: never rewritten
                        if params.quicklooks:
                            raise OutputError(
                                f"{row['quicklook_uri']} exists (another mining of this "
                                "stack?); nothing rewritten"
                            )
                        leftovers += 1
                    storage.write_bytes(row["quicklook_uri"], png)
                    written.append(row["quicklook_uri"])
                if leftovers:
                    log.warning(
                        "%d quicklook(s) of an interrupted mining of %s replaced (no row "
                        "referred to them)",
                        leftovers,
                        stack_uri,
                    )
                ensure_feature_set(conn, fset, names)
                t1 = time.monotonic()
                count = copy_patches(conn, mined.rows)
                copy_s = time.monotonic() - t1
    except BaseException:
        for uri in written:
            try:
                storage.delete(uri)
            except Exception as exc:  # pragma: no cover - best effort, logged
                log.warning("could not delete %s: %s", uri, exc)
        raise
    total = time.monotonic() - started
    log.info("mined %d patches of %s in %.1f s (COPY %.3f s)", count, stack_uri, total, copy_s)
    return {
        "stack": stack_uri,
        "dataset": params.dataset,
        "patches": count,
        "candidates": mined.candidates,
        "replaced_leftover_quicklooks": leftovers,
        "size": params.size,
        "stride": params.stride,
        "feature_set": fset,
        "features": len(names),
        "sensors": mined.rows[0]["sensors"],
        "embedding": params.encoder,
        "quicklooks": folder.uri,
        "cut_seconds": round(cut_s, 3),
        "copy_seconds": round(copy_s, 4),
        "patches_per_second": round(count / cut_s, 1) if cut_s > 0 else None,
    }
