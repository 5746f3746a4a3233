"""Sentinel-1 GRD backscatter in Candela: the S1 counterpart of :mod:`candela_sdk.sentinel2`.

One home for the radar side of the shared formats:

* **layouts**: BigEarthNet S1 patches (``<patch>/<patch>_VV.tif``, ``_VH.tif`` and
  ``<patch>_labels_metadata.json`` with ``acquisition_time``), SEN12MS-CR ``s1/<roi>.tif`` (two
  bands VV, VH in dB) and Sen1Floods11 ``*_S1Hand.tif`` (bands described ``VV``, ``VH``, dB, NaN
  nodata); any other two-band GeoTIFF whose band descriptions name the polarisations;
* **units**: linear ↔ dB, and the unit *detected from the value range* (:func:`detect_unit`):
  backscatter in dB is mostly negative (median −25 … 0 dB); linear power is non-negative and
  small (median < 1). Anything else is refused with the range found;
* **speckle**: an optional Lee filter (computed in linear power);
* **grids**: resampling and reprojection onto a Sentinel-2 B02 grid with the co-registration
  reported (:func:`to_grid`: CRS, resolutions, sub-pixel offset of the two grids, overlap);
* **pairing in time**: the nearest S1 acquisition of an S2 one within a window (default
  :data:`DEFAULT_WINDOW_DAYS` days) and the refusal naming both dates (:func:`check_pair`).

NumPy and rasterio only (imported where needed); nothing here imports a service.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from candela_sdk.errors import InputError
from candela_sdk.sentinel2 import BIGEARTHNET_METADATA_SUFFIX, BIGEARTHNET_S1, bigearthnet_time

log = logging.getLogger(__name__)

POLARISATIONS: tuple[str, ...] = ("VV", "VH")
DEFAULT_WINDOW_DAYS = 10.0
Unit = Literal["dB", "linear"]
#: smallest linear power written when converting to dB (−50 dB): zero power has no logarithm
LINEAR_FLOOR = 1e-5
SEN1FLOODS11 = re.compile(r"^(?P<chip>.+)_S1Hand\.tif$", re.IGNORECASE)


@dataclass
class S1Scene:
    """Backscatter of one acquisition (or patch): ``data`` (polarisations, rows, cols) float32,
    NaN where there is no data, always in dB once read by :func:`read_s1`."""

    data: np.ndarray
    polarisations: list[str]
    crs: Any
    transform: Any
    unit: Unit = "dB"
    acquired: dt.datetime | None = None
    layout: str = "geotiff"
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.data.shape[1]), int(self.data.shape[2])

    def band(self, pol: str) -> np.ndarray:
        return self.data[self.polarisations.index(pol)]


# --- units ----------------------------------------------------------------------------------


def to_db(linear: np.ndarray) -> np.ndarray:
    """Linear power → dB (values below :data:`LINEAR_FLOOR` are floored; NaN stays NaN)."""
    a = np.asarray(linear, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        return (10.0 * np.log10(np.maximum(a, LINEAR_FLOOR))).astype(np.float32)


def to_linear(db: np.ndarray) -> np.ndarray:
    """dB → linear power."""
    return np.power(10.0, np.asarray(db, dtype=np.float32) / 10.0).astype(np.float32)


def detect_unit(values: np.ndarray, what: str = "backscatter") -> Unit:
    """``"dB"`` or ``"linear"`` from the range of the finite values; :class:`InputError` when
    the range fits neither (e.g. amplitudes in DN, or a wrong band)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise InputError(f"{what} has no finite value")
    lo, med, hi = (float(x) for x in np.percentile(v, [1, 50, 99]))
    if lo >= 0 and med < 1.0 and hi <= 50.0:
        return "linear"
    if lo < 0 and -35.0 <= med <= 5.0 and lo >= -80.0 and hi <= 40.0:
        return "dB"
    raise InputError(
        f"{what} is in an unexpected unit: 1st/50th/99th percentiles {lo:.3g}/{med:.3g}/{hi:.3g}"
        " fit neither dB (median -35..5, some negative) nor linear power (non-negative, "
        "median < 1)"
    )


def as_db(data: np.ndarray, what: str, notes: list[str] | None = None) -> np.ndarray:
    """``data`` in dB, converted (and said in the log and ``notes``) when it is linear."""
    unit = detect_unit(data, what)
    if unit == "linear":
        msg = f"{what}: values look like linear power (detected from their range): converted to dB"
        log.warning(msg)
        if notes is not None:
            notes.append(msg)
        return to_db(data)
    return np.asarray(data, dtype=np.float32)


# --- speckle --------------------------------------------------------------------------------


def lee_filter(db: np.ndarray, size: int = 5) -> np.ndarray:
    """Lee speckle filter of one band in dB (computed on linear power, returned in dB).

    Local mean and variance over ``size``×``size`` windows; the noise variance is estimated as
    the median local variance relative to the squared local mean (equivalent number of looks).
    NaN pixels are left NaN and do not contribute.
    """
    if size < 3 or size % 2 == 0:
        raise InputError(f"speckle filter size must be odd and >= 3, got {size}")
    lin = to_linear(db).astype(np.float64)
    valid = np.isfinite(lin)
    x = np.where(valid, lin, 0.0)
    w = uniform_filter(valid.astype(np.float64), size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = uniform_filter(x, size) / w
        sq = uniform_filter(x * x, size) / w
        var = np.maximum(sq - mean * mean, 0.0)
        cv2 = var / np.maximum(mean * mean, 1e-12)
        noise = float(np.nanmedian(cv2[valid])) if valid.any() else 0.0
        weight = np.clip(1.0 - noise / np.maximum(cv2, 1e-12), 0.0, 1.0)
        out = mean + weight * (x - mean)
    out = np.where(valid, out, np.nan)
    return to_db(out)


def uniform_filter(x: np.ndarray, size: int) -> np.ndarray:
    """Mean over ``size``×``size`` windows (edges reflected), by summed-area table."""
    r = size // 2
    p = np.pad(x, r, mode="reflect")
    c = np.cumsum(np.cumsum(p, axis=0), axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    h, w = x.shape
    s = c[size : size + h, size : size + w] - c[:h, size : size + w]
    s = s - c[size : size + h, :w] + c[:h, :w]
    return np.asarray(s / (size * size))


# --- reading --------------------------------------------------------------------------------


def _pol_indexes(descriptions: Sequence[str | None], count: int, source: str) -> list[int]:
    names = [(d or "").strip().upper() for d in descriptions]
    if any(names):
        missing = [p for p in POLARISATIONS if p not in names]
        if missing:
            raise InputError(
                f"{source}: polarisation {', '.join(missing)} missing "
                f"(bands: {', '.join(n or '?' for n in names)}); VV and VH are needed"
            )
        return [names.index(p) for p in POLARISATIONS]
    if count != 2:
        raise InputError(
            f"{source}: {count} unnamed band(s); a Sentinel-1 file needs VV and VH "
            "(two bands, or band descriptions naming them)"
        )
    return [0, 1]  # SEN12MS-CR and most GRD exports: VV, VH


def read_s1(uri: str | Path) -> S1Scene:
    """Backscatter (VV, VH, in dB) of a BigEarthNet S1 patch folder, a SEN12MS-CR or
    Sen1Floods11 S1 GeoTIFF, or any two-band VV/VH GeoTIFF. Linear input is converted (logged);
    a missing polarisation or an unknown unit is bad input."""
    import rasterio

    from candela_sdk import storage

    loc = storage.parse(str(uri))
    path = Path(loc.path) if loc.scheme == "file" else None
    if path is not None and path.is_dir():
        return _read_bigearthnet(path)
    notes: list[str] = []
    with storage.rasterio_env():
        try:
            ds = rasterio.open(storage.gdal_path(loc.uri))
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(f"cannot open Sentinel-1 file {loc.uri}: {exc}") from None
        with ds:
            idx = _pol_indexes(ds.descriptions, ds.count, loc.uri)
            data = ds.read([i + 1 for i in idx]).astype(np.float32)
            if ds.nodata is not None and np.isfinite(ds.nodata):
                data[data == ds.nodata] = np.nan
            tags = ds.tags()
            crs, transform = ds.crs, ds.transform
    layout = "sen1floods11" if SEN1FLOODS11.match(Path(loc.path).name) else "geotiff"
    if "/s1/" in loc.path.replace("\\", "/") and re.match(r"^ROIs\d+_", Path(loc.path).name):
        layout = "sen12mscr"
        # SEN12MS-CR writes 0 where there is no data (its values are clipped to [-25, 0] in
        # some releases, but an exact 0 in both polarisations is the fill value)
        fill = (data == 0).all(axis=0)
        data[:, fill] = np.nan
    for i, pol in enumerate(POLARISATIONS):
        data[i] = as_db(data[i], f"{loc.uri} {pol}", notes)
    acquired = None
    for key in ("datetime", "ACQUISITION_DATETIME", "acquisition_time"):
        if tags.get(key):
            acquired = _utc(tags[key])
            break
    return S1Scene(
        data, list(POLARISATIONS), crs, transform, "dB", acquired, layout, loc.uri, notes
    )


def _utc(text: str) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _read_bigearthnet(folder: Path) -> S1Scene:
    import rasterio

    name = folder.name
    if not BIGEARTHNET_S1.match(name):
        raise InputError(
            f"{folder}: not a BigEarthNet Sentinel-1 patch folder "
            "(S1A_IW_GRDH_1SDV_<time>_<tile>_<row>_<col>)"
        )
    bands = []
    crs = transform = None
    for pol in POLARISATIONS:
        f = folder / f"{name}_{pol}.tif"
        if not f.is_file():
            raise InputError(f"BigEarthNet S1 patch {name}: polarisation {pol} missing ({f.name})")
        with rasterio.open(f) as ds:
            bands.append(ds.read(1).astype(np.float32))
            crs, transform = ds.crs, ds.transform
    notes: list[str] = []
    data = np.stack(
        [as_db(b, f"{name} {p}", notes) for b, p in zip(bands, POLARISATIONS, strict=True)]
    )
    acquired = None
    meta_file = folder / f"{name}{BIGEARTHNET_METADATA_SUFFIX}"
    if meta_file.is_file():
        acquired = bigearthnet_time(json.loads(meta_file.read_text()), "acquisition_time")
    return S1Scene(
        data, list(POLARISATIONS), crs, transform, "dB", acquired, "bigearthnet", str(folder), notes
    )


# --- onto the Sentinel-2 grid ----------------------------------------------------------------


@dataclass(frozen=True)
class TargetGrid:
    crs: Any
    transform: Any
    width: int
    height: int


def to_grid(
    scene: S1Scene, grid: TargetGrid, speckle: int | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """The scene's backscatter (dB) on ``grid`` (the S2 B02 grid) and the co-registration report.

    Resampling is bilinear on linear power (averaging dB would bias dark pixels); pixels of the
    grid outside the scene are NaN. The report gives both CRSs and resolutions, whether a
    reprojection was needed, the offset between the two grids' pixel corners in target pixels
    (sub-pixel misregistration of the grids themselves; not an image-matching estimate), and the
    share of the grid the scene covers. No overlap at all is bad input.
    """
    from rasterio.crs import CRS
    from rasterio.warp import Resampling, reproject, transform_bounds

    data = scene.data
    notes = list(scene.notes)
    if speckle:
        data = np.stack([lee_filter(b, speckle) for b in data])
        notes.append(f"Lee speckle filter {speckle}x{speckle}")
    src_crs = CRS.from_user_input(scene.crs)
    dst_crs = CRS.from_user_input(grid.crs)
    h, w = scene.shape
    sl, sb, sr, st = transform_bounds(src_crs, dst_crs, *_bounds(scene.transform, w, h))
    gl, gb, gr, gt = _bounds(grid.transform, grid.width, grid.height)
    ix = max(0.0, min(sr, gr) - max(sl, gl))
    iy = max(0.0, min(st, gt) - max(sb, gb))
    overlap = (ix * iy) / max((gr - gl) * (gt - gb), 1e-12)
    if overlap <= 0:
        raise InputError(
            f"the Sentinel-1 scene {scene.source} does not overlap the Sentinel-2 grid "
            f"(S1 bounds {sl:.6g},{sb:.6g},{sr:.6g},{st:.6g}; S2 bounds "
            f"{gl:.6g},{gb:.6g},{gr:.6g},{gt:.6g} in {dst_crs.to_string()})"
        )
    out = np.full((data.shape[0], grid.height, grid.width), np.nan, dtype=np.float32)
    for i in range(data.shape[0]):
        lin = to_linear(data[i])
        dst = np.full((grid.height, grid.width), np.nan, dtype=np.float32)
        reproject(
            lin,
            dst,
            src_transform=scene.transform,
            src_crs=src_crs,
            src_nodata=np.nan,
            dst_transform=grid.transform,
            dst_crs=dst_crs,
            dst_nodata=np.nan,
            resampling=Resampling.bilinear,
        )
        out[i] = to_db(dst)
        out[i][~np.isfinite(dst)] = np.nan
    same_crs = src_crs == dst_crs
    report: dict[str, Any] = {
        "source_crs": src_crs.to_string(),
        "target_crs": dst_crs.to_string(),
        "reprojected": not same_crs,
        "source_resolution": [abs(scene.transform.a), abs(scene.transform.e)],
        "target_resolution": [abs(grid.transform.a), abs(grid.transform.e)],
        "resampling": "bilinear on linear power",
        "overlap_fraction": round(min(1.0, overlap), 6),
        "valid_fraction": round(float(np.isfinite(out).all(axis=0).mean()), 6),
        "notes": notes,
    }
    if same_crs:
        # where the S1 pixel corners fall on the S2 grid, in S2 pixels (0 = the grids coincide)
        col, row = ~grid.transform @ (scene.transform.c, scene.transform.f)
        report["grid_offset_px"] = [
            round(float(col - round(col)), 4),
            round(float(row - round(row)), 4),
        ]
    return out, report


def _bounds(transform: Any, width: int, height: int) -> tuple[float, float, float, float]:
    xs = [transform.c, transform.c + transform.a * width]
    ys = [transform.f, transform.f + transform.e * height]
    return min(xs), min(ys), max(xs), max(ys)


# --- pairing in time ----------------------------------------------------------------------


def nearest(
    target: dt.datetime,
    candidates: Iterable[tuple[str, dt.datetime]],
    window_days: float = DEFAULT_WINDOW_DAYS,
) -> tuple[str, dt.datetime, float] | None:
    """The candidate ``(id, time)`` nearest to ``target`` within ``window_days`` as
    ``(id, time, days apart)``; ties go to the earlier acquisition, then the smaller id."""
    best: tuple[float, dt.datetime, str] | None = None
    for cid, when in candidates:
        days = abs((when - target).total_seconds()) / 86400.0
        if days <= window_days and (best is None or (days, when, cid) < best):
            best = (days, when, cid)
    if best is None:
        return None
    return best[2], best[1], round(best[0], 4)


def check_pair(
    s2_time: dt.datetime | None,
    s1_time: dt.datetime | None,
    window_days: float = DEFAULT_WINDOW_DAYS,
) -> float | None:
    """Days between the two acquisitions; :class:`InputError` naming both dates when they are
    more than ``window_days`` apart. Unknown dates are allowed (``None``: not checked)."""
    if s2_time is None or s1_time is None:
        return None
    days = abs((s1_time - s2_time).total_seconds()) / 86400.0
    if days > window_days:
        raise InputError(
            f"Sentinel-1 acquired {s1_time.date().isoformat()} and Sentinel-2 acquired "
            f"{s2_time.date().isoformat()} are {days:.1f} days apart, more than the "
            f"{window_days:g}-day window"
        )
    return round(days, 4)
