"""Inputs: optical stacks, optical validity, labelled scenes, real cloud shapes, patch stores.

* :func:`optical_bands` maps a stack's band descriptions (``B02`` / ``B2`` / preprocess names)
  to the model's 10 bands; reflectance = DN × scale + offset when the stack records them
  (preprocess stacks, L2A baseline ≥ 04.00), else DN / 10000.
* :func:`validity_from` turns an SCL raster (valid classes 4, 5, 6, 7, 11 as in preprocess), a
  validity mask (non-zero valid) or a cloud mask (non-zero cloud) into a boolean array.
* :func:`floods_scene` reads the Sen1Floods11 chip (optical, radar, water labels).
* :func:`cloud_field` is a *real* cloud-thickness field: the cloudy minus the cloud-free visible
  reflectance of a SEN12MS-CR triplet, smoothed, mirror-tiled to the wanted size;
  :func:`cloud_mask` keeps the thickest ``share`` of it, so every cloud share is a level set of a
  real cloud.
* patch stores (``<dir>/meta.json``, ``optical.npy`` (N, H, W, 10), ``radar.npy`` (N, H, W, 2),
  ``labels.npy`` (N, H, W) with 255 = unlabelled, optional ``valid.npy``) are what ``train``
  streams with ``tf.data`` (memory-mapped, one patch at a time), so the same code trains on a
  store of any size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from candela_fusion.nets import OPTICAL_BANDS
from candela_sdk.errors import InputError
from candela_sdk.sentinel2 import normalise_band

SCL_VALID = (4, 5, 6, 7, 11)
LABEL_NODATA = 255


def optical_bands(descriptions: list[str | None], count: int, source: str) -> list[int]:
    """0-based indexes of the model's bands in a stack; InputError naming the missing ones."""
    names = []
    for d in descriptions:
        try:
            names.append(normalise_band(d or ""))
        except Exception:
            names.append(d or "")
    if not any(names):
        if count == 13:  # unnamed full L1C stack: B01..B12 with B8A after B08
            names = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09"]
            names += ["B10", "B11", "B12"]
        else:
            raise InputError(f"{source}: {count} unnamed bands; band descriptions are needed")
    missing = [b for b in OPTICAL_BANDS if b not in names]
    if missing:
        raise InputError(
            f"{source}: optical band(s) {', '.join(missing)} missing (has {', '.join(names)})"
        )
    return [names.index(b) for b in OPTICAL_BANDS]


def reflectance(ds: Any, window: Any = None, indexes: list[int] | None = None) -> np.ndarray:
    """(rows, cols, 10) float32 reflectance of the model's bands; NaN where nodata."""
    idx = indexes if indexes is not None else optical_bands(list(ds.descriptions), ds.count, "")
    raw = ds.read([i + 1 for i in idx], window=window).astype("float32")
    nodata = ds.nodata if ds.nodata is not None else 0
    bad = (raw == nodata) | ~np.isfinite(raw)
    scales = ds.scales if any(s not in (None, 1.0) for s in ds.scales) else None
    if scales is not None:
        sc = np.asarray([ds.scales[i] for i in idx], "float32")[:, None, None]
        off = np.asarray([ds.offsets[i] for i in idx], "float32")[:, None, None]
        out = raw * sc + off
    else:
        out = raw / 10000.0
    out[bad] = np.nan
    return np.moveaxis(out, 0, -1)


def validity_from(values: np.ndarray, kind: str) -> np.ndarray:
    """Optical validity from an ``scl``, ``valid`` or ``cloud`` raster band."""
    if kind == "scl":
        return np.isin(values, SCL_VALID)
    if kind == "valid":
        return values != 0
    if kind == "cloud":
        return values == 0
    raise InputError(f"unknown optical mask kind {kind!r} (scl, valid, cloud)")


@dataclass
class Scene:
    optical: np.ndarray  # (H, W, 10) reflectance, NaN no data
    radar: np.ndarray  # (H, W, 2) dB, NaN no data
    labels: np.ndarray  # (H, W) uint8, LABEL_NODATA unlabelled
    crs: Any = None
    transform: Any = None


def floods_scene(folder: str | Path) -> Scene:
    """The Sen1Floods11 chip: ``*_S2Hand.tif``, ``*_S1Hand.tif``, ``*_LabelHand.tif``."""
    import rasterio

    from candela_sdk.sentinel1 import read_s1

    folder = Path(folder)
    try:
        s2 = next(folder.glob("*_S2Hand.tif"))
        s1 = next(folder.glob("*_S1Hand.tif"))
        lab = next(folder.glob("*_LabelHand.tif"))
    except StopIteration:
        raise InputError(
            f"{folder}: not a Sen1Floods11 chip folder (*_S2Hand/S1Hand/LabelHand.tif)"
        ) from None
    with rasterio.open(s2) as ds:
        optical = reflectance(ds, indexes=optical_bands(list(ds.descriptions), ds.count, str(s2)))
        crs, transform = ds.crs, ds.transform
    radar = np.moveaxis(read_s1(s1).data, 0, -1)
    with rasterio.open(lab) as ds:
        raw = ds.read(1)
    labels = np.where(raw < 0, LABEL_NODATA, raw).astype("uint8")
    return Scene(optical, radar, labels, crs, transform)


def cloud_field(triplet_root: str | Path, shape: tuple[int, int], roi: str) -> np.ndarray:
    """A real cloud-thickness field of ``shape`` from the SEN12MS-CR triplet ``roi``."""
    import rasterio

    from candela_sdk.sentinel1 import uniform_filter

    root = Path(triplet_root)
    with rasterio.open(root / "s2_cloudy" / f"{roi}.tif") as c:
        cloudy = c.read([2, 3, 4]).astype("float32")
    with rasterio.open(root / "s2_cloudfree" / f"{roi}.tif") as f:
        clear = f.read([2, 3, 4]).astype("float32")
    d = (cloudy - clear).mean(axis=0)
    d = uniform_filter(uniform_filter(d, 7), 7)
    reps = (-(-shape[0] // d.shape[0]), -(-shape[1] // d.shape[1]))
    rows = [
        np.concatenate([d[:, ::-1] if j % 2 else d for j in range(reps[1])], axis=1)
        for _ in range(reps[0])
    ]
    tiled = np.concatenate([r[::-1] if i % 2 else r for i, r in enumerate(rows)], axis=0)
    return np.asarray(tiled[: shape[0], : shape[1]], "float32")


def cloud_mask(field: np.ndarray, share: float) -> np.ndarray:
    """True where clouded: the thickest ``share`` (0-1) of the field."""
    if share <= 0:
        return np.zeros(field.shape, bool)
    cut = np.quantile(field, 1.0 - share)
    return field >= cut


def cloudy_reflectance(triplet_root: str | Path, shape: tuple[int, int], roi: str) -> np.ndarray:
    """The cloudy scene's reflectance in the model's bands, mirror-tiled to ``shape``."""
    import rasterio

    with rasterio.open(Path(triplet_root) / "s2_cloudy" / f"{roi}.tif") as ds:
        a = reflectance(ds, indexes=optical_bands(list(ds.descriptions), ds.count, roi))
    reps = (-(-shape[0] // a.shape[0]), -(-shape[1] // a.shape[1]))
    rows = [
        np.concatenate([a[:, ::-1] if j % 2 else a for j in range(reps[1])], axis=1)
        for _ in range(reps[0])
    ]
    tiled = np.concatenate([r[::-1] if i % 2 else r for i, r in enumerate(rows)], axis=0)
    return np.asarray(tiled[: shape[0], : shape[1]], "float32")


# --- patch stores -----------------------------------------------------------------------------


def write_store(
    folder: str | Path,
    optical: np.ndarray,
    radar: np.ndarray,
    labels: np.ndarray,
    valid: np.ndarray | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "optical.npy", optical.astype("float32"))
    np.save(folder / "radar.npy", radar.astype("float32"))
    np.save(folder / "labels.npy", labels.astype("uint8"))
    if valid is not None:
        np.save(folder / "valid.npy", valid.astype("uint8"))
    (folder / "meta.json").write_text(
        json.dumps({"patches": int(optical.shape[0]), **(meta or {})}, indent=2)
    )
    return folder


def scene_patches(scene: Scene, size: int, rows: slice | None = None) -> dict[str, np.ndarray]:
    """Non-overlapping ``size`` patches of a scene (optionally of a row range)."""
    r = rows or slice(0, scene.labels.shape[0])
    opt, rad, lab = scene.optical[r], scene.radar[r], scene.labels[r]
    h, w = lab.shape
    out: dict[str, list[np.ndarray]] = {"optical": [], "radar": [], "labels": []}
    for y in range(0, h - size + 1, size):
        for x in range(0, w - size + 1, size):
            out["optical"].append(opt[y : y + size, x : x + size])
            out["radar"].append(rad[y : y + size, x : x + size])
            out["labels"].append(lab[y : y + size, x : x + size])
    return {k: np.stack(v) for k, v in out.items()}


def open_store(folder: str | Path) -> dict[str, np.ndarray]:
    """Memory-mapped arrays of a local patch store (InputError when incomplete)."""
    folder = Path(folder)
    if not (folder / "meta.json").is_file():
        raise InputError(f"{folder}: not a patch store (meta.json missing)")
    out = {}
    for key in ("optical", "radar", "labels", "valid"):
        f = folder / f"{key}.npy"
        if f.is_file():
            out[key] = np.load(f, mmap_mode="r")
        elif key != "valid":
            raise InputError(f"patch store {folder}: {f.name} missing")
    n = {k: v.shape[0] for k, v in out.items()}
    if len(set(n.values())) != 1:
        raise InputError(f"patch store {folder}: arrays have different patch counts {n}")
    return out
